package org.mediator.sdk;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.TreeSet;

/**
 * A path of keys down an archive's levels, at any granularity, plus metadata filters: what a set
 * holds, as {@code core.pointer.Pointer} in Python.
 *
 * <p>Its text form is {@code SOURCE[/KEY...][?NAME=VALUE[,VALUE][&NAME=VALUE]]}, e.g.
 * {@code idc/nlst?Modality=CT}; keys with {@code / ? & , = %} in them are %-escaped. Every SDK method
 * that takes pointers takes this text; {@link #toString()} writes it and {@link #parse} reads it.
 *
 * @param source the archive (source id): {@code idc}, {@code tcia}, {@code gdc}...
 * @param path keys from the first level down (empty: the whole archive)
 * @param filters metadata filters, names and values sorted ({@code Modality -> [CT, MR]})
 */
public record Pointer(String source, List<String> path, Map<String, List<String>> filters) {

    /** The filter a cohort rule joins its patients with ({@code @in}). */
    public static final String JOIN_FILTER = "@in";
    /** The filter that keeps only the patients every joined archive holds ({@code @every}). */
    public static final String JOIN_EVERY = "@every";

    /**
     * A pointer in canonical form: filter names and values sorted, values without repeats.
     *
     * @param source the archive (source id)
     * @param path keys from the first level down
     * @param filters metadata filters by name
     */
    public Pointer {
        if (source == null || source.isEmpty()) {
            throw new MediatorException.ValidationError(
                    "a pointer is SOURCE[/KEY...][?NAME=VALUE], e.g. idc/nlst?Modality=CT");
        }
        path = List.copyOf(path == null ? List.of() : path);
        Map<String, List<String>> sorted = new TreeMap<>();
        if (filters != null) {
            for (Map.Entry<String, List<String>> e : filters.entrySet()) {
                if (e.getValue() == null || e.getValue().isEmpty()) {
                    throw new MediatorException.ValidationError(
                            "filter '" + e.getKey() + "' allows no value: give at least one");
                }
                sorted.put(e.getKey(), List.copyOf(new TreeSet<>(e.getValue())));
            }
        }
        filters = Collections.unmodifiableMap(new LinkedHashMap<>(sorted));
    }

    /**
     * A pointer to some keys, without filters: {@code Pointer.of("idc", "nlst", "100002")}.
     *
     * @param source the archive
     * @param path keys from the first level down
     * @return the pointer
     */
    public static Pointer of(String source, String... path) {
        return new Pointer(source, List.of(path), Map.of());
    }

    /**
     * This pointer with one more filter: {@code Pointer.of("idc", "nlst").with("Modality", "CT")}.
     *
     * @param name the metadata's name
     * @param values the values any of which selects
     * @return a new pointer
     */
    public Pointer with(String name, String... values) {
        Map<String, List<String>> more = new LinkedHashMap<>(filters);
        List<String> vals = new ArrayList<>(more.getOrDefault(name, List.of()));
        vals.addAll(List.of(values));
        more.put(name, vals);
        return new Pointer(source, path, more);
    }

    /**
     * Read a pointer's text: {@code idc/nlst?Modality=CT,MR}.
     *
     * @param text the pointer
     * @return the pointer
     * @throws MediatorException.ValidationError when the text is empty or a filter has no value
     */
    public static Pointer parse(String text) {
        if (text == null || text.isBlank()) {
            throw new MediatorException.ValidationError(
                    "a pointer is SOURCE[/KEY...][?NAME=VALUE], e.g. idc/nlst?Modality=CT");
        }
        String t = text.strip();
        int q = t.indexOf('?');
        String head = q < 0 ? t : t.substring(0, q);
        String query = q < 0 ? "" : t.substring(q + 1);
        String trimmed = head.replaceAll("^/+", "").replaceAll("/+$", "");
        List<String> parts = new ArrayList<>();
        for (String part : trimmed.split("/", -1)) {
            parts.add(unquote(part));
        }
        Map<String, List<String>> filters = new LinkedHashMap<>();
        for (String item : query.split("&")) {
            if (item.isEmpty()) {
                continue;
            }
            int eq = item.indexOf('=');
            if (eq < 0) {
                throw new MediatorException.ValidationError("filter '" + item + "' in '" + text
                        + "' needs a value: NAME=VALUE, e.g. Modality=CT");
            }
            List<String> vals = filters.computeIfAbsent(unquote(item.substring(0, eq)), k -> new ArrayList<>());
            for (String v : item.substring(eq + 1).split(",", -1)) {
                vals.add(unquote(v));
            }
        }
        return new Pointer(parts.get(0), parts.subList(1, parts.size()), filters);
    }

    /** @return the pointer's text, which {@link #parse} reads back: {@code idc/nlst/100002?Modality=CT,MR} */
    @Override
    public String toString() {
        StringBuilder out = new StringBuilder(quote(source));
        for (String key : path) {
            out.append('/').append(quote(key));
        }
        if (!filters.isEmpty()) {
            List<String> items = new ArrayList<>();
            for (Map.Entry<String, List<String>> e : filters.entrySet()) {
                List<String> vals = new ArrayList<>();
                for (String v : e.getValue()) {
                    vals.add(quote(v));
                }
                items.add(quote(e.getKey()) + "=" + String.join(",", vals));
            }
            out.append('?').append(String.join("&", items));
        }
        return out.toString();
    }

    /** @return the pointer as the local API takes it: {@code {"source", "path", "filters"}} */
    public Map<String, Object> toJson() {
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("source", source);
        out.put("path", path);
        out.put("filters", filters);
        return out;
    }

    /** Python's {@code urllib.parse.quote(text, safe="")}: all but unreserved characters %-escaped. */
    static String quote(String text) {
        StringBuilder out = new StringBuilder();
        for (byte b : text.getBytes(StandardCharsets.UTF_8)) {
            int c = b & 0xff;
            if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.'
                    || c == '-' || c == '~') {
                out.append((char) c);
            } else {
                out.append('%').append(Character.toUpperCase(Character.forDigit(c >> 4, 16)))
                        .append(Character.toUpperCase(Character.forDigit(c & 0xf, 16)));
            }
        }
        return out.toString();
    }

    /** Python's {@code urllib.parse.unquote}: %XX sequences decoded as UTF-8, anything else kept. */
    static String unquote(String text) {
        if (text.indexOf('%') < 0) {
            return text;
        }
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        StringBuilder out = new StringBuilder();
        int i = 0;
        while (i < text.length()) {
            char c = text.charAt(i);
            if (c == '%' && i + 2 < text.length()
                    && Character.digit(text.charAt(i + 1), 16) >= 0 && Character.digit(text.charAt(i + 2), 16) >= 0) {
                bytes.write(Integer.parseInt(text.substring(i + 1, i + 3), 16));
                i += 3;
                continue;
            }
            if (bytes.size() > 0) {
                out.append(bytes.toString(StandardCharsets.UTF_8));
                bytes.reset();
            }
            out.append(c);
            i++;
        }
        if (bytes.size() > 0) {
            out.append(bytes.toString(StandardCharsets.UTF_8));
        }
        return out.toString();
    }
}
