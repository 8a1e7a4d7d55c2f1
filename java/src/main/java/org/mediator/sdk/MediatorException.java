package org.mediator.sdk;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * An expected failure the node reported, typed as the Python SDK's {@code core.errors} classes.
 *
 * <p>The local API answers every error with {@code {"error": ClassName, "code": machine_code,
 * "message": "...", ...}}; {@link #fromBody} turns that body back into the same subclass the Python
 * SDK raises ({@link NotFound}, {@link PermissionDenied}, {@link Conflict} with the current head,
 * {@link ValidationError}, {@link SourceError}, {@link ClusterUnavailable}...). A code this version
 * does not know gives a plain {@code MediatorException}: a newer node never breaks an older SDK.
 *
 * <p>The message says what happened and what to do; show it to the user as it is.
 */
public class MediatorException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    private final String code;
    private final int status;
    private final transient JsonObject body;

    /**
     * An error with a message.
     *
     * @param message what happened and what to do
     */
    public MediatorException(String message) {
        this(message, 0, null);
    }

    /**
     * An error as the node answered it.
     *
     * @param message what happened and what to do
     * @param status the HTTP status of the answer (0: raised by the SDK itself)
     * @param body the answer's JSON body, or null
     */
    public MediatorException(String message, int status, JsonObject body) {
        super(message);
        this.code = codeOf(getClass());
        this.status = status;
        this.body = body;
    }

    /** @return the machine code of this kind of error: {@code not_found}, {@code conflict}... */
    public String code() {
        return code;
    }

    /** @return the HTTP status the node answered with, or 0 when the SDK raised it itself */
    public int status() {
        return status;
    }

    /** @return the {@code error} field of the node's answer (its class name), or this class's name */
    public String error() {
        if (body != null && body.has("error") && body.get("error").isJsonPrimitive()) {
            return body.get("error").getAsString();
        }
        return getClass().getSimpleName();
    }

    /** @return the {@code detail} field of the node's answer (422: where the request is malformed), or null */
    public JsonElement detail() {
        return body == null ? null : body.get("detail");
    }

    // -- the kinds, mirroring mediator_desktop.core.errors -------------------------------------------

    /** Input that breaks a rule of the domain model (a bad pointer, a malformed request...). */
    public static class ValidationError extends MediatorException {
        private static final long serialVersionUID = 1L;

        ValidationError(String message) {
            super(message);
        }

        ValidationError(String message, int status, JsonObject body) {
            super(message, status, body);
        }
    }

    /** Publication metadata that breaks rules of a DOI record, with every problem by field. */
    public static class MetadataProblems extends ValidationError {
        private static final long serialVersionUID = 1L;

        MetadataProblems(String message, int status, JsonObject body) {
            super(message, status, body);
        }

        /** @return each problem by field ({@code title}, {@code creators.0.orcid}...) */
        public Map<String, String> problems() {
            Map<String, String> out = new LinkedHashMap<>();
            JsonElement detail = detail();
            if (detail != null && detail.isJsonObject()) {
                for (Map.Entry<String, JsonElement> e : detail.getAsJsonObject().entrySet()) {
                    out.put(e.getKey(), e.getValue().isJsonPrimitive() ? e.getValue().getAsString() : e.getValue().toString());
                }
            }
            return Collections.unmodifiableMap(out);
        }
    }

    /** Data whose content does not match the hash or size it claims. */
    public static class IntegrityError extends MediatorException {
        private static final long serialVersionUID = 1L;

        IntegrityError(String message, int status, JsonObject body) {
            super(message, status, body);
        }
    }

    /** An RO-Crate or bag MEDIator exported, changed by hand since. */
    public static class EditedExport extends IntegrityError {
        private static final long serialVersionUID = 1L;

        EditedExport(String message, int status, JsonObject body) {
            super(message, status, body);
        }
    }

    /** A set, version, user or archive path that does not exist (or is not visible to you). */
    public static class NotFound extends MediatorException {
        private static final long serialVersionUID = 1L;

        NotFound(String message) {
            super(message);
        }

        NotFound(String message, int status, JsonObject body) {
            super(message, status, body);
        }
    }

    /** You may not do what the request asks (edit a set you neither own nor edit...). */
    public static class PermissionDenied extends MediatorException {
        private static final long serialVersionUID = 1L;

        PermissionDenied(String message, int status, JsonObject body) {
            super(message, status, body);
        }
    }

    /** A command whose sequence number was used before, or that is too old. */
    public static class Replay extends PermissionDenied {
        private static final long serialVersionUID = 1L;

        Replay(String message, int status, JsonObject body) {
            super(message, status, body);
        }
    }

    /** An attempt to change something published. */
    public static class Immutable extends PermissionDenied {
        private static final long serialVersionUID = 1L;

        Immutable(String message, int status, JsonObject body) {
            super(message, status, body);
        }
    }

    /** A change based on a stale version; {@link #currentHead()} is the version to build on instead. */
    public static class Conflict extends MediatorException {
        private static final long serialVersionUID = 1L;

        Conflict(String message, int status, JsonObject body) {
            super(message, status, body);
        }

        /** @return the set's head version now, or null when the node did not say */
        public Integer currentHead() {
            JsonObject b = super.body;
            if (b == null || !b.has("current_head") || b.get("current_head").isJsonNull()) {
                return null;
            }
            return b.get("current_head").getAsInt();
        }
    }

    /** No quorum answered within the bounded wait; nothing was written. */
    public static class ClusterUnavailable extends MediatorException {
        private static final long serialVersionUID = 1L;

        ClusterUnavailable(String message, int status, JsonObject body) {
            super(message, status, body);
        }
    }

    /**
     * A change went out and no answer came, even after it was sent again: it may have been
     * applied. Read the set before you try again.
     */
    public static class OutcomeUnknown extends ClusterUnavailable {
        private static final long serialVersionUID = 1L;

        OutcomeUnknown(String message, int status, JsonObject body) {
            super(message, status, body);
        }
    }

    /** An archive failed or answered something unusable. */
    public static class SourceError extends MediatorException {
        private static final long serialVersionUID = 1L;

        SourceError(String message, int status, JsonObject body) {
            super(message, status, body);
        }
    }

    /** An archive's host could not be reached at all. */
    public static class ArchiveUnreachable extends SourceError {
        private static final long serialVersionUID = 1L;

        ArchiveUnreachable(String message, int status, JsonObject body) {
            super(message, status, body);
        }
    }

    /** The user cancelled the job; what finished stays, the rest resumes on the next run. */
    public static class Cancelled extends MediatorException {
        private static final long serialVersionUID = 1L;

        Cancelled(String message, int status, JsonObject body) {
            super(message, status, body);
        }
    }

    /** The destination has too little free space for what a download needs; nothing was fetched. */
    public static class InsufficientSpace extends MediatorException {
        private static final long serialVersionUID = 1L;

        InsufficientSpace(String message, int status, JsonObject body) {
            super(message, status, body);
        }
    }

    /** Another download is already writing into the same folder. */
    public static class DownloadBusy extends MediatorException {
        private static final long serialVersionUID = 1L;

        DownloadBusy(String message, int status, JsonObject body) {
            super(message, status, body);
        }
    }

    /** A join failed: a wrong, expired or used code, another protocol version, or no answer. */
    public static class PairingError extends MediatorException {
        private static final long serialVersionUID = 1L;

        PairingError(String message, int status, JsonObject body) {
            super(message, status, body);
        }
    }

    /** Another node already runs on the same data folder. */
    public static class NodeRunning extends MediatorException {
        private static final long serialVersionUID = 1L;

        NodeRunning(String message, int status, JsonObject body) {
            super(message, status, body);
        }
    }

    /** No node answers on this machine's local API (not running, or it refused the token). */
    public static class NodeUnreachable extends MediatorException {
        private static final long serialVersionUID = 1L;

        NodeUnreachable(String message) {
            super(message);
        }

        NodeUnreachable(String message, int status, JsonObject body) {
            super(message, status, body);
        }
    }

    // -- the one table: machine code and class name -> kind -----------------------------------------

    @FunctionalInterface
    private interface Maker {
        MediatorException make(String message, int status, JsonObject body);
    }

    private record Kind(String code, String pythonName, Class<? extends MediatorException> type, Maker maker) {
    }

    private static final Map<String, Kind> BY_CODE = new LinkedHashMap<>();
    private static final Map<String, Kind> BY_NAME = new LinkedHashMap<>();

    private static void kind(String code, String pythonName, Class<? extends MediatorException> type, Maker maker) {
        Kind k = new Kind(code, pythonName, type, maker);
        BY_CODE.put(code, k);
        BY_NAME.put(pythonName, k);
    }

    static {
        // code, the Python class name (the API's "error" field), the Java class
        kind("error", "MediatorError", MediatorException.class, MediatorException::new);
        kind("validation", "ValidationError", ValidationError.class, ValidationError::new);
        kind("metadata", "MetadataProblems", MetadataProblems.class, MetadataProblems::new);
        kind("integrity", "IntegrityError", IntegrityError.class, IntegrityError::new);
        kind("edited_export", "EditedExport", EditedExport.class, EditedExport::new);
        kind("not_found", "NotFound", NotFound.class, NotFound::new);
        kind("permission", "PermissionDenied", PermissionDenied.class, PermissionDenied::new);
        kind("replay", "ReplayError", Replay.class, Replay::new);
        kind("immutable", "ImmutableError", Immutable.class, Immutable::new);
        kind("conflict", "ConflictError", Conflict.class, Conflict::new);
        kind("cluster_unavailable", "ClusterUnavailable", ClusterUnavailable.class, ClusterUnavailable::new);
        kind("outcome_unknown", "OutcomeUnknown", OutcomeUnknown.class, OutcomeUnknown::new);
        kind("source", "SourceError", SourceError.class, SourceError::new);
        kind("archive_unreachable", "ArchiveUnreachable", ArchiveUnreachable.class, ArchiveUnreachable::new);
        kind("cancelled", "Cancelled", Cancelled.class, Cancelled::new);
        kind("insufficient_space", "InsufficientSpace", InsufficientSpace.class, InsufficientSpace::new);
        kind("download_busy", "DownloadBusy", DownloadBusy.class, DownloadBusy::new);
        kind("pairing", "PairingError", PairingError.class, PairingError::new);
        kind("node_running", "NodeRunning", NodeRunning.class, NodeRunning::new);
        kind("node_unreachable", "NodeUnreachable", NodeUnreachable.class, NodeUnreachable::new);
    }

    private static String codeOf(Class<?> type) {
        for (Kind k : BY_CODE.values()) {
            if (k.type() == type) {
                return k.code();
            }
        }
        return "error";
    }

    /** @return every machine code this SDK knows, each with its Python class name (for parity checks) */
    public static Map<String, String> knownCodes() {
        Map<String, String> out = new LinkedHashMap<>();
        BY_CODE.forEach((code, k) -> out.put(code, k.pythonName()));
        return Collections.unmodifiableMap(out);
    }

    /**
     * The typed error of an error answer of the local API, as {@code core.errors.from_json} reads it:
     * by {@code code} when the body has one, else by {@code error} (the class name).
     *
     * @param status the HTTP status
     * @param body the answer's JSON object (may be null)
     * @param fallback the message when the body has none
     * @return the typed error (a plain {@code MediatorException} for a kind this version does not know)
     */
    public static MediatorException fromBody(int status, JsonObject body, String fallback) {
        String message = fallback;
        if (body != null && body.has("message") && body.get("message").isJsonPrimitive()
                && !body.get("message").getAsString().isEmpty()) {
            message = body.get("message").getAsString();
        }
        if (message == null || message.isEmpty()) {
            message = "the node refused the request";
        }
        Kind kind = null;
        if (body != null && body.has("code") && body.get("code").isJsonPrimitive()) {
            kind = BY_CODE.get(body.get("code").getAsString());
        } else if (body != null && body.has("error") && body.get("error").isJsonPrimitive()) {
            kind = BY_NAME.get(body.get("error").getAsString());
        }
        if (kind == null) {
            kind = BY_CODE.get("error");
        }
        if (kind.code().equals("validation") && body != null && body.has("detail") && body.get("detail").isJsonObject()
                && body.getAsJsonObject("detail").size() > 0) {
            kind = BY_CODE.get("metadata"); // publication metadata: every problem by field
        }
        return kind.maker().make(message, status, body);
    }
}
