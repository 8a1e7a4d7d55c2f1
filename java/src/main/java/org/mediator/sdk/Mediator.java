package org.mediator.sdk;

import com.google.gson.FieldNamingPolicy;
import com.google.gson.Gson;
import com.google.gson.GsonBuilder;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParseException;
import com.google.gson.JsonParser;
import com.google.gson.reflect.TypeToken;
import java.io.IOException;
import java.lang.reflect.Type;
import java.net.ConnectException;
import java.net.URI;
import java.net.URLEncoder;
import java.net.http.HttpClient;
import java.net.http.HttpConnectTimeoutException;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.net.http.HttpTimeoutException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.MessageDigest;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.TimeoutException;
import java.util.regex.Pattern;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;
import org.mediator.sdk.Models.CheckModel;
import org.mediator.sdk.Models.CitationModel;
import org.mediator.sdk.Models.ClusterModel;
import org.mediator.sdk.Models.ColumnModel;
import org.mediator.sdk.Models.DiffModel;
import org.mediator.sdk.Models.DoiMetadataModel;
import org.mediator.sdk.Models.ImportModel;
import org.mediator.sdk.Models.ItemModel;
import org.mediator.sdk.Models.JobModel;
import org.mediator.sdk.Models.JoinPreviewModel;
import org.mediator.sdk.Models.LeafModel;
import org.mediator.sdk.Models.LeavesModel;
import org.mediator.sdk.Models.MatchCohortModel;
import org.mediator.sdk.Models.MatchModel;
import org.mediator.sdk.Models.NodeInfo;
import org.mediator.sdk.Models.PageModel;
import org.mediator.sdk.Models.PatientsModel;
import org.mediator.sdk.Models.PeerModel;
import org.mediator.sdk.Models.PublicationModel;
import org.mediator.sdk.Models.RowsModel;
import org.mediator.sdk.Models.ScanReportModel;
import org.mediator.sdk.Models.SetModel;
import org.mediator.sdk.Models.SetUpdateModel;
import org.mediator.sdk.Models.SettingsChangeModel;
import org.mediator.sdk.Models.SettingsModel;
import org.mediator.sdk.Models.SourceKindModel;
import org.mediator.sdk.Models.SourceModel;
import org.mediator.sdk.Models.TableModel;
import org.mediator.sdk.Models.TablePreviewModel;
import org.mediator.sdk.Models.TableVersionModel;
import org.mediator.sdk.Models.TrackModel;
import org.mediator.sdk.Models.UpdateCheckModel;
import org.mediator.sdk.Models.UpdateResult;
import org.mediator.sdk.Models.UserModel;
import org.mediator.sdk.Models.ValueCountModel;
import org.mediator.sdk.Models.VersionModel;

/**
 * Replica sets as one user of this machine's node, over the node's local HTTP API: the Java
 * counterpart of the Python SDK's {@code Mediator}.
 *
 * <pre>{@code
 * try (Mediator m = Mediator.connect()) {
 *     SetModel rs = m.createSet("Lung CT", "tcia/LIDC-IDRI");
 *     m.share(rs.id(), "cluster", List.of(), List.of());
 *     m.add(rs.id(), "tcia/SOFT-TISSUE-SARCOMA");
 *     System.out.println(m.diff(rs.id(), 1).summary());
 *     JobModel job = m.download(rs.id(), Path.of("/data/lung-ct"),
 *             new Mediator.DownloadOptions().progress(p -> System.out.println(p.line())));
 * }
 * }</pre>
 *
 * <p>{@link #connect()} finds the node running for this user (the desktop app or {@code mediator node
 * run}) through {@code local-api.json} in its data folder, and sends the token only after the node
 * proved it holds it ({@code GET /v1/proof}). Unlike the Python SDK it never starts a node itself.
 *
 * <p>Every failure the node reports is a typed {@link MediatorException}. Pointers are given as text
 * ({@code "tcia/LIDC-IDRI?Modality=CT"}, see {@link Pointer}). Methods are safe to call from several
 * threads.
 */
public final class Mediator implements AutoCloseable {
    private static final System.Logger LOG = System.getLogger(Mediator.class.getName());
    private static final Pattern SET_ID = Pattern.compile("[0-9a-f]{32}");
    private static final String APP_NAME = "mediator-desktop";
    private static final String ENDPOINT_FILE = "local-api.json";
    /** The default time one request may take. */
    public static final Duration DEFAULT_TIMEOUT = Duration.ofSeconds(120);

    static final Gson READ = new GsonBuilder()
            .setFieldNamingPolicy(FieldNamingPolicy.LOWER_CASE_WITH_UNDERSCORES)
            .create();
    private static final Gson WRITE = new GsonBuilder()
            .setFieldNamingPolicy(FieldNamingPolicy.LOWER_CASE_WITH_UNDERSCORES)
            .serializeNulls() // a null put in a body means null ({"pathology": null}); absent keys stay absent
            .create();

    private final URI url;
    private final String token;
    private final Duration timeout;
    private final HttpClient http;

    private Mediator(URI url, String token, Duration timeout) {
        this.url = URI.create(url.toString().replaceAll("/+$", ""));
        this.token = token;
        this.timeout = timeout;
        this.http = HttpClient.newBuilder()
                .version(HttpClient.Version.HTTP_1_1)
                .proxy(HttpClient.Builder.NO_PROXY) // loopback only: never through a proxy
                .connectTimeout(Duration.ofSeconds(10))
                .build();
    }

    // -- connecting ----------------------------------------------------------------------------

    /**
     * Connect to the node running for this user: the one whose data folder is
     * {@code $MEDIATOR_HOME/data}, or the {@code data_dir} of the settings, or the platform's default.
     *
     * @return a client; close it when done
     * @throws MediatorException.NodeUnreachable when no node runs, or what answers cannot prove it holds the token
     */
    public static Mediator connect() {
        return connect(defaultDataDir());
    }

    /**
     * Connect to the node whose data folder is {@code dataDir} (it holds {@code local-api.json}).
     *
     * @param dataDir the node's data folder ({@code mediator info} shows it)
     * @return a client; close it when done
     * @throws MediatorException.NodeUnreachable when no node runs there, or what answers cannot prove it holds the token
     */
    public static Mediator connect(Path dataDir) {
        return connect(dataDir, DEFAULT_TIMEOUT);
    }

    /**
     * Connect to the node whose data folder is {@code dataDir}, with a time limit per request.
     *
     * @param dataDir the node's data folder
     * @param timeout how long one request may take (downloads wait in shorter steps)
     * @return a client; close it when done
     */
    public static Mediator connect(Path dataDir, Duration timeout) {
        Path file = dataDir.resolve(ENDPOINT_FILE);
        String text;
        try {
            text = Files.readString(file, StandardCharsets.UTF_8);
        } catch (NoSuchFileException e) {
            throw noNode(dataDir);
        } catch (IOException e) {
            throw new MediatorException.ValidationError(file + " cannot be read (" + e.getMessage() + ")");
        }
        String endpointUrl;
        String endpointToken;
        long pid;
        try {
            JsonObject data = JsonParser.parseString(text).getAsJsonObject();
            endpointUrl = data.get("url").getAsString();
            endpointToken = data.get("token").getAsString();
            pid = data.get("pid").getAsLong();
        } catch (RuntimeException e) {
            throw new MediatorException.ValidationError(file + " is damaged (" + e.getMessage()
                    + "); stop the node, delete the file and start the node again");
        }
        if (!endpointUrl.startsWith("http://127.0.0.1:")) {
            throw new MediatorException.ValidationError(
                    file + " names " + endpointUrl + ", not a loopback address; delete it");
        }
        boolean alive = pid > 0 && ProcessHandle.of(pid).map(ProcessHandle::isAlive).orElse(false);
        if (!alive) {
            throw noNode(dataDir);
        }
        return connect(URI.create(endpointUrl), endpointToken, timeout);
    }

    /**
     * Connect to a node's local API given its address and token. The token is sent only after the
     * node proved it holds it.
     *
     * @param url {@code http://127.0.0.1:PORT}
     * @param token the token of the node's {@code local-api.json}
     * @param timeout how long one request may take
     * @return a client; close it when done
     */
    public static Mediator connect(URI url, String token, Duration timeout) {
        Mediator m = new Mediator(url, token, timeout);
        m.checkProof();
        return m;
    }

    private static MediatorException noNode(Path dataDir) {
        return new MediatorException.NodeUnreachable(
                "no node runs for " + dataDir + "; start one (mediator node run, or the desktop app)");
    }

    /**
     * The data folder {@link #connect()} looks in: {@code $MEDIATOR_HOME/data}, else the
     * {@code data_dir} of the settings file, else the platform's user data folder.
     *
     * @return the folder
     */
    public static Path defaultDataDir() {
        String home = System.getenv("MEDIATOR_HOME");
        Path config;
        Path data;
        if (home != null && !home.isEmpty()) {
            Path h = Path.of(expandUser(home));
            config = h.resolve("config");
            data = h.resolve("data");
        } else {
            config = platformDir(true);
            data = platformDir(false);
        }
        try {
            JsonObject settings = JsonParser.parseString(
                    Files.readString(config.resolve("settings.json"), StandardCharsets.UTF_8)).getAsJsonObject();
            JsonElement dir = settings.get("data_dir");
            if (dir != null && dir.isJsonPrimitive() && !dir.getAsString().isEmpty()) {
                return Path.of(expandUser(dir.getAsString()));
            }
        } catch (IOException | RuntimeException e) {
            // no settings file (or one the node will complain about): the default folder
        }
        return data;
    }

    private static String expandUser(String path) {
        return path.startsWith("~") ? System.getProperty("user.home") + path.substring(1) : path;
    }

    /** What platformdirs answers for the app's user config ({@code config}) or data folder. */
    private static Path platformDir(boolean config) {
        String os = System.getProperty("os.name", "").toLowerCase(Locale.ROOT);
        Path userHome = Path.of(System.getProperty("user.home"));
        if (os.contains("win")) {
            String local = System.getenv("LOCALAPPDATA");
            Path base = local != null ? Path.of(local) : userHome.resolve("AppData").resolve("Local");
            return base.resolve(APP_NAME);
        }
        if (os.contains("mac")) {
            return userHome.resolve("Library").resolve("Application Support").resolve(APP_NAME);
        }
        String xdg = System.getenv(config ? "XDG_CONFIG_HOME" : "XDG_DATA_HOME");
        Path base = xdg != null && !xdg.isEmpty() ? Path.of(xdg)
                : config ? userHome.resolve(".config") : userHome.resolve(".local").resolve("share");
        return base.resolve(APP_NAME);
    }

    /**
     * What a node holding {@code token} answers to {@code challenge}: HMAC-SHA256 keyed with the
     * token over {@code "mediator-local-api-proof:" + challenge}, in hex.
     *
     * @param token the token
     * @param challenge the challenge (hex)
     * @return the proof
     */
    public static String tokenProof(String token, String challenge) {
        try {
            Mac mac = Mac.getInstance("HmacSHA256");
            mac.init(new SecretKeySpec(token.getBytes(StandardCharsets.UTF_8), "HmacSHA256"));
            byte[] digest = mac.doFinal(("mediator-local-api-proof:" + challenge).getBytes(StandardCharsets.UTF_8));
            return HexFormat.of().formatHex(digest);
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException("this JVM has no HmacSHA256", e);
        }
    }

    /**
     * Refuse to send the token to a program that cannot prove it holds it: after a crash,
     * {@code local-api.json} names a port another user of the machine may have taken.
     */
    private void checkProof() {
        byte[] random = new byte[16];
        new SecureRandom().nextBytes(random);
        String challenge = HexFormat.of().formatHex(random);
        String proof = null;
        try {
            HttpRequest request = HttpRequest.newBuilder(URI.create(url + "/v1/proof?challenge=" + challenge))
                    .timeout(timeout.compareTo(Duration.ofSeconds(10)) < 0 ? timeout : Duration.ofSeconds(10))
                    .GET().build(); // no Authorization header: the token is not sent yet
            HttpResponse<String> response = http.send(request, HttpResponse.BodyHandlers.ofString());
            if (response.statusCode() == 200) {
                JsonElement p = JsonParser.parseString(response.body()).getAsJsonObject().get("proof");
                proof = p != null && p.isJsonPrimitive() ? p.getAsString() : null;
            }
        } catch (ConnectException | HttpConnectTimeoutException e) {
            throw new MediatorException.NodeUnreachable("the node at " + url + " does not answer ("
                    + e.getClass().getSimpleName() + "); is it still running?");
        } catch (IOException | RuntimeException e) {
            proof = null;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new MediatorException.NodeUnreachable("interrupted while connecting to the node at " + url);
        }
        byte[] expected = tokenProof(token, challenge).getBytes(StandardCharsets.UTF_8);
        if (proof == null || !MessageDigest.isEqual(expected, proof.getBytes(StandardCharsets.UTF_8))) {
            throw new MediatorException.NodeUnreachable("what answers at " + url
                    + " is not the MEDIator node of this data folder (the node may have stopped and left "
                    + "local-api.json behind); the token was not sent. Start the node (mediator node run, or "
                    + "the desktop app) and try again");
        }
    }

    /** @return the node's local API address ({@code http://127.0.0.1:PORT}) */
    public URI url() {
        return url;
    }

    /** Nothing to release but the connection pool; the node keeps running. */
    @Override
    public void close() {
        // HttpClient has no close() before Java 21; its idle connections time out on their own.
    }

    // -- HTTP ----------------------------------------------------------------------------------

    /** Query parameters: nulls left out, lists repeated ({@code path=a&path=b}). */
    static final class Query {
        private final List<String> parts = new ArrayList<>();

        Query put(String name, Object value) {
            if (value instanceof Collection<?> values) {
                for (Object v : values) {
                    put(name, v);
                }
            } else if (value != null) {
                parts.add(enc(name) + "=" + enc(String.valueOf(value)));
            }
            return this;
        }

        String text() {
            return parts.isEmpty() ? "" : "?" + String.join("&", parts);
        }

        private static String enc(String s) {
            return URLEncoder.encode(s, StandardCharsets.UTF_8).replace("+", "%20");
        }
    }

    private HttpResponse<byte[]> request(String method, String path, Object body, Query query) {
        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(url + path + (query == null ? "" : query.text())))
                .timeout(timeout)
                .header("Authorization", "Bearer " + token)
                .header("Accept", "application/json");
        if (body != null) {
            b.header("Content-Type", "application/json");
            b.method(method, HttpRequest.BodyPublishers.ofString(WRITE.toJson(body), StandardCharsets.UTF_8));
        } else {
            b.method(method, HttpRequest.BodyPublishers.noBody());
        }
        HttpResponse<byte[]> response;
        try {
            response = http.send(b.build(), HttpResponse.BodyHandlers.ofByteArray());
        } catch (HttpConnectTimeoutException | ConnectException e) {
            throw new MediatorException.NodeUnreachable("the node at " + url + " does not answer ("
                    + e.getClass().getSimpleName() + "); is it still running?");
        } catch (HttpTimeoutException e) {
            throw new MediatorException.NodeUnreachable(
                    "the node at " + url + " did not answer within " + timeout.toSeconds() + " s");
        } catch (IOException e) {
            throw new MediatorException.NodeUnreachable("the node at " + url + " does not answer ("
                    + e.getClass().getSimpleName() + ": " + e.getMessage() + "); is it still running?");
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new MediatorException.NodeUnreachable("interrupted while waiting for the node at " + url);
        }
        if (response.statusCode() >= 400) {
            throw errorOf(response.statusCode(), new String(response.body(), StandardCharsets.UTF_8));
        }
        return response;
    }

    /** The typed error of an error answer (one table for every frontend: {@link MediatorException#fromBody}). */
    static MediatorException errorOf(int status, String text) {
        JsonObject body = null;
        try {
            JsonElement parsed = JsonParser.parseString(text);
            body = parsed.isJsonObject() ? parsed.getAsJsonObject() : null;
        } catch (JsonParseException e) {
            body = null;
        }
        String shortText = text.length() > 500 ? text.substring(0, 500) : text;
        boolean hasMessage = body != null && body.has("message") && body.get("message").isJsonPrimitive()
                && !body.get("message").getAsString().isEmpty();
        if (status == 422 && !hasMessage) { // a node from before one-line messages
            String detail = body != null && body.has("detail") ? body.get("detail").toString() : shortText;
            return new MediatorException.ValidationError("the node refused the request: " + detail, status, body);
        }
        if (status == 401) {
            String said = hasMessage ? body.get("message").getAsString() : shortText;
            return new MediatorException.NodeUnreachable("the node refused the token (" + said
                    + "); restart it, or check MEDIATOR_HOME points at its data", status, body);
        }
        String fallback = "HTTP " + status + ": " + (text.length() > 300 ? text.substring(0, 300) : text);
        return MediatorException.fromBody(status, body, fallback);
    }

    private JsonElement call(String method, String path, Object body, Query query) {
        HttpResponse<byte[]> response = request(method, path, body, query);
        if (response.statusCode() == 204 || response.body().length == 0) {
            return null;
        }
        return JsonParser.parseString(new String(response.body(), StandardCharsets.UTF_8));
    }

    private <T> T get(String path, Class<T> type, Query query) {
        return READ.fromJson(call("GET", path, null, query), type);
    }

    private <T> T send(String method, String path, Class<T> type, Object body) {
        return READ.fromJson(call(method, path, body, null), type);
    }

    private <T> List<T> list(String method, String path, Class<T> type, Object body, Query query) {
        Type listType = TypeToken.getParameterized(List.class, type).getType();
        return READ.fromJson(call(method, path, body, query), listType);
    }

    private static Map<String, Object> body() {
        return new LinkedHashMap<>();
    }

    private static String setId(String id) {
        if (id == null || !SET_ID.matcher(id).matches()) {
            throw new MediatorException.ValidationError("'" + id + "' is not a replica set id (32 hex digits)");
        }
        return id;
    }

    private static String segment(String text) {
        return Pointer.quote(text);
    }

    private static List<Map<String, Object>> pointersJson(Collection<String> pointers) {
        List<Map<String, Object>> out = new ArrayList<>();
        for (String p : pointers) {
            out.add(Pointer.parse(p).toJson());
        }
        return out;
    }

    private static List<String> pointerTexts(Collection<String> pointers) {
        List<String> out = new ArrayList<>();
        for (String p : pointers) {
            out.add(Pointer.parse(p).toString());
        }
        return out;
    }

    private static <T> T warn(T result, List<String> warnings) {
        if (warnings != null) {
            for (String w : warnings) {
                LOG.log(System.Logger.Level.WARNING, w);
            }
        }
        return result;
    }

    private static List<String> filterArgs(Map<String, List<String>> filters) {
        List<String> out = new ArrayList<>();
        if (filters != null) {
            filters.forEach((name, values) -> out.add(name + "=" + String.join(",", values)));
        }
        return out;
    }

    private static String localFile(Path path) {
        return Path.of(expandUser(path.toString())).toAbsolutePath().toString();
    }

    // -- node and cluster --------------------------------------------------------------------------

    /** @return this node: version, the user's key id and name, folders, cluster address */
    public NodeInfo node() {
        return get("/v1/node", NodeInfo.class, null);
    }

    /** @return the members of the cluster, their health and the leader */
    public ClusterModel cluster() {
        return get("/v1/cluster", ClusterModel.class, null);
    }

    /** @return machines seen on the network (member, not member, other cluster) */
    public List<PeerModel> peers() {
        return list("GET", "/v1/peers", PeerModel.class, null, null);
    }

    /** @return the users of the cluster (key id and display name) */
    public List<UserModel> users() {
        return list("GET", "/v1/users", UserModel.class, null, null);
    }

    /**
     * A single-use code another machine types to join this cluster.
     *
     * @param ttl how long it is valid (60 s to a day)
     * @return the code
     */
    public String joinCode(Duration ttl) {
        Map<String, Object> b = body();
        b.put("ttl", ttl.toMillis() / 1000.0);
        return call("POST", "/v1/cluster/join-code", b, null).getAsJsonObject().get("code").getAsString();
    }

    /** @return a join code valid for 10 minutes */
    public String joinCode() {
        return joinCode(Duration.ofMinutes(10));
    }

    /**
     * Join the cluster that made {@code code} (this node must hold no sets of its own).
     *
     * @param code the join code
     * @return the cluster joined
     */
    public ClusterModel join(String code) {
        Map<String, Object> b = body();
        b.put("code", code);
        return send("POST", "/v1/cluster/join", ClusterModel.class, b);
    }

    /** @return the cluster after this node left it and went on alone */
    public ClusterModel leave() {
        return send("POST", "/v1/cluster/leave", ClusterModel.class, null);
    }

    /**
     * Remove another member (a machine gone for good) from the cluster. Not in the Python SDK.
     *
     * @param address its cluster address, {@code host:port}
     * @return the cluster after
     */
    public ClusterModel removeMember(String address) {
        Map<String, Object> b = body();
        b.put("address", address);
        return send("POST", "/v1/cluster/remove", ClusterModel.class, b);
    }

    // -- archives ------------------------------------------------------------------------------

    /** @return the archives this node can browse, with their levels and filterable metadata */
    public List<SourceModel> sources() {
        return list("GET", "/v1/sources", SourceModel.class, null, null);
    }

    /** @return the kinds of archive that can be added, with the options each takes */
    public List<SourceKindModel> sourceKinds() {
        return list("GET", "/v1/sources/kinds", SourceKindModel.class, null, null);
    }

    /**
     * Add an archive, live: {@code addSource("tcia", null, Map.of("base_url", url), null)}.
     *
     * @param kind tcia, idc, gdc, dicomweb, local... (see {@link #sourceKinds()})
     * @param id its id (null: the kind, numbered when taken)
     * @param options its options ({@code base_url}, {@code folder}...): text, numbers or booleans
     * @param secret a password or token for the node's OS keyring (never in the settings), or null
     * @return the archive added
     */
    public SourceModel addSource(String kind, String id, Map<String, ?> options, String secret) {
        Map<String, Object> b = body();
        b.put("kind", kind);
        b.put("id", id);
        b.put("options", options == null ? Map.of() : options);
        b.put("secret", secret);
        return send("POST", "/v1/sources", SourceModel.class, b);
    }

    /**
     * Add an archive with its default id and no secret.
     *
     * @param kind the kind
     * @param options its options
     * @return the archive added
     */
    public SourceModel addSource(String kind, Map<String, ?> options) {
        return addSource(kind, null, options, null);
    }

    /**
     * Remove an archive, live (sets keep their pointers to it).
     *
     * @param source its id
     */
    public void removeSource(String source) {
        call("DELETE", "/v1/sources/" + segment(source), null, null);
    }

    /**
     * Check a configured archive answers.
     *
     * @param source its id
     * @return one line: {@code "reachable: 3 collections"}
     */
    public String testSource(String source) {
        return send("POST", "/v1/sources/" + segment(source) + "/test", CheckModel.class, null).message();
    }

    /**
     * Check an archive to add answers, before adding it.
     *
     * @param kind the kind
     * @param id its id, or null
     * @param options its options
     * @param secret its password or token, or null
     * @return one line: {@code "reachable: 3 collections"}
     */
    public String testSource(String kind, String id, Map<String, ?> options, String secret) {
        Map<String, Object> b = body();
        b.put("kind", kind);
        b.put("id", id);
        b.put("options", options == null ? Map.of() : options);
        b.put("secret", secret);
        return send("POST", "/v1/sources/test", CheckModel.class, b).message();
    }

    /**
     * Keep an archive's password or token in the node's OS keyring; used from now on.
     *
     * @param source the archive's id
     * @param secret the password or token
     */
    public void setSourceSecret(String source, String secret) {
        Map<String, Object> b = body();
        b.put("secret", secret);
        call("PUT", "/v1/sources/" + segment(source) + "/secret", b, null);
    }

    /**
     * Index a folder archive again now (only new and changed files are read).
     *
     * @param source the archive's id
     * @return what was read
     */
    public ScanReportModel rescan(String source) {
        return send("POST", "/v1/sources/" + segment(source) + "/rescan", ScanReportModel.class, null);
    }

    /**
     * Children of {@code path} in an archive.
     *
     * @param source the archive's id
     * @param path keys from the first level down
     * @param filters metadata filters ({@code Modality -> [CT]}), or null
     * @param offset the first child to answer
     * @param limit how many at most
     * @return a page of children
     */
    public PageModel browse(String source, List<String> path, Map<String, List<String>> filters, int offset,
            int limit) {
        return get("/v1/sources/" + segment(source) + "/browse", PageModel.class, new Query().put("path", path)
                .put("filter", filterArgs(filters)).put("offset", offset).put("limit", limit));
    }

    /**
     * The first 200 children of {@code path}: {@code browse("tcia", "LIDC-IDRI")} lists its patients.
     *
     * @param source the archive's id
     * @param path keys from the first level down
     * @return a page of children
     */
    public PageModel browse(String source, String... path) {
        return browse(source, List.of(path), null, 0, 200);
    }

    /**
     * Every child of {@code path}, fetched page by page.
     *
     * @param source the archive's id
     * @param path keys from the first level down
     * @return the children
     */
    public List<ItemModel> browseAll(String source, String... path) {
        List<ItemModel> out = new ArrayList<>();
        int offset = 0;
        while (true) {
            PageModel page = browse(source, List.of(path), null, offset, 1000);
            out.addAll(page.items());
            if (!page.more() || page.items().isEmpty()) {
                return out;
            }
            offset += page.items().size();
        }
    }

    /**
     * Children of {@code path} whose key or label contains {@code text} (any case).
     *
     * @param source the archive's id
     * @param text what to look for
     * @param path keys from the first level down
     * @param filters metadata filters, or null
     * @param limit how many at most
     * @return the children found
     */
    public List<ItemModel> search(String source, String text, List<String> path, Map<String, List<String>> filters,
            int limit) {
        return list("GET", "/v1/sources/" + segment(source) + "/search", ItemModel.class, null, new Query()
                .put("q", text).put("path", path).put("filter", filterArgs(filters)).put("limit", limit));
    }

    /**
     * Children of {@code path} whose key or label contains {@code text}: {@code search("tcia", "lung")}.
     *
     * @param source the archive's id
     * @param text what to look for
     * @param path keys from the first level down
     * @return up to 100 children
     */
    public List<ItemModel> search(String source, String text, String... path) {
        return search(source, text, List.of(path), null, 100);
    }

    /**
     * The values metadata {@code name} (e.g. {@code Modality}) takes below {@code path}.
     *
     * @param source the archive's id
     * @param name the metadata's name
     * @param path keys from the first level down
     * @return the values
     */
    public List<String> values(String source, String name, String... path) {
        return list("GET", "/v1/sources/" + segment(source) + "/values/" + segment(name), String.class, null,
                new Query().put("path", List.of(path)));
    }

    // -- replica sets --------------------------------------------------------------------------

    /** @return every set you may see */
    public List<SetModel> sets() {
        return sets("all");
    }

    /**
     * Sets you may see, by group.
     *
     * @param scope all, mine, shared, cluster, public, published or following
     * @return the sets
     */
    public List<SetModel> sets(String scope) {
        return list("GET", "/v1/sets", SetModel.class, null, new Query().put("scope", scope));
    }

    /**
     * @param setId the set's id (32 hex digits)
     * @return the set
     * @throws MediatorException.NotFound when there is none you may see
     */
    public SetModel getSet(String setId) {
        return get("/v1/sets/" + setId(setId), SetModel.class, null);
    }

    /**
     * A set by id, or by its name when exactly one set you see has it.
     *
     * @param nameOrId a name or an id
     * @return the set
     * @throws MediatorException.NotFound when none has it
     * @throws MediatorException.ValidationError when several have it
     */
    public SetModel findSet(String nameOrId) {
        if (SET_ID.matcher(nameOrId).matches()) {
            return getSet(nameOrId);
        }
        List<SetModel> visible = sets();
        List<SetModel> matches = visible.stream().filter(s -> s.name().equals(nameOrId)).toList();
        if (matches.isEmpty()) {
            List<String> names = visible.stream().limit(8).map(s -> "'" + s.name() + "'").toList();
            throw new MediatorException.NotFound("no set named '" + nameOrId + "' is visible to you"
                    + (visible.isEmpty() ? "; you see no sets yet"
                            : "; the sets you can see: " + String.join(", ", names)
                                    + (visible.size() > 8 ? ", ..." : "")));
        }
        if (matches.size() > 1) {
            throw new MediatorException.ValidationError(matches.size() + " sets are named '" + nameOrId + "' ("
                    + String.join(", ", matches.stream().map(SetModel::id).toList()) + "); use an id");
        }
        return matches.get(0);
    }

    /** A new set: its name and, optionally, pointers for a first version. */
    public static final class NewSet {
        private final String name;
        private final List<String> add = new ArrayList<>();
        private String description = "";
        private String visibility = "private";
        private String message = "";
        private boolean strict;

        /**
         * @param name the set's name
         */
        public NewSet(String name) {
            this.name = name;
        }

        /**
         * @param pointers pointers for the first version ({@code "tcia/LIDC-IDRI?Modality=CT"})
         * @return this
         */
        public NewSet add(String... pointers) {
            add.addAll(List.of(pointers));
            return this;
        }

        /**
         * @param pointers pointers for the first version
         * @return this
         */
        public NewSet add(Collection<String> pointers) {
            add.addAll(pointers);
            return this;
        }

        /**
         * @param text what the set is
         * @return this
         */
        public NewSet description(String text) {
            description = text;
            return this;
        }

        /**
         * @param value private (default), cluster or public
         * @return this
         */
        public NewSet visibility(String value) {
            visibility = value;
            return this;
        }

        /**
         * @param text the first version's message
         * @return this
         */
        public NewSet message(String text) {
            message = text;
            return this;
        }

        /**
         * @param value refuse pointers that select nothing (a ValidationError, and no set)
         * @return this
         */
        public NewSet strict(boolean value) {
            strict = value;
            return this;
        }
    }

    /**
     * A new set, with a first version when it names pointers (resolved by the node). A pointer whose
     * path does not exist raises {@code NotFound} naming the closest keys; one that selects nothing is
     * in {@code warnings()} (logged too; with {@code strict}, a {@code ValidationError} and no set).
     *
     * @param spec the set
     * @return the set created
     */
    public SetModel createSet(NewSet spec) {
        Map<String, Object> b = body();
        b.put("name", spec.name);
        b.put("description", spec.description);
        b.put("visibility", spec.visibility);
        b.put("add", pointersJson(spec.add));
        b.put("message", spec.message);
        b.put("strict", spec.strict);
        SetModel rs = send("POST", "/v1/sets", SetModel.class, b);
        return warn(rs, rs.warnings());
    }

    /**
     * A new private set: {@code createSet("Lung CT", "tcia/LIDC-IDRI?Modality=CT")}.
     *
     * @param name the set's name
     * @param add pointers for its first version (none: an empty set)
     * @return the set created
     */
    public SetModel createSet(String name, String... add) {
        return createSet(new NewSet(name).add(add));
    }

    /** A change of a set: pointers to add and to remove, in one new version. */
    public static final class SetUpdate {
        private final List<String> add = new ArrayList<>();
        private final List<String> remove = new ArrayList<>();
        private String message = "";
        private Integer expectedHead;
        private boolean strict;

        /**
         * @param pointers pointers to add
         * @return this
         */
        public SetUpdate add(String... pointers) {
            add.addAll(List.of(pointers));
            return this;
        }

        /**
         * @param pointers pointers to remove (removing part of something added coarser excludes it)
         * @return this
         */
        public SetUpdate remove(String... pointers) {
            remove.addAll(List.of(pointers));
            return this;
        }

        /**
         * @param text the version's message
         * @return this
         */
        public SetUpdate message(String text) {
            message = text;
            return this;
        }

        /**
         * @param version the version this change builds on: if someone committed since, {@code Conflict}
         * @return this
         */
        public SetUpdate expectedHead(int version) {
            expectedHead = version;
            return this;
        }

        /**
         * @param value refuse pointers that select nothing
         * @return this
         */
        public SetUpdate strict(boolean value) {
            strict = value;
            return this;
        }
    }

    /**
     * Add and remove pointers at any granularity in one new version.
     *
     * @param setId the set
     * @param change what to add and remove
     * @return the new version (null when nothing changed) and the set
     * @throws MediatorException.Conflict when {@code expectedHead} is stale; {@code currentHead()} says the head
     * @throws MediatorException.PermissionDenied when you are neither owner nor editor
     */
    public UpdateResult update(String setId, SetUpdate change) {
        Map<String, Object> b = body();
        b.put("add", pointersJson(change.add));
        b.put("remove", pointersJson(change.remove));
        b.put("message", change.message);
        b.put("expected_head", change.expectedHead);
        b.put("strict", change.strict);
        UpdateResult result = send("POST", "/v1/sets/" + setId(setId) + "/versions", UpdateResult.class, b);
        return warn(result, result.warnings());
    }

    /**
     * {@code add(id, "tcia/LIDC-IDRI/patient")}: add pointers in a new version.
     *
     * @param setId the set
     * @param pointers what to add
     * @return the new version and the set
     */
    public UpdateResult add(String setId, String... pointers) {
        return update(setId, new SetUpdate().add(pointers));
    }

    /**
     * Remove (or exclude) pointers in a new version.
     *
     * @param setId the set
     * @param pointers what to remove
     * @return the new version and the set
     */
    public UpdateResult remove(String setId, String... pointers) {
        return update(setId, new SetUpdate().remove(pointers));
    }

    /**
     * Give a set a new name (its owner and editors may).
     *
     * @param setId the set
     * @param name the new name
     * @param description the new description, or null: unchanged
     * @return the set
     */
    public SetModel rename(String setId, String name, String description) {
        Map<String, Object> b = body();
        b.put("name", name);
        if (description != null) {
            b.put("description", description);
        }
        return send("PUT", "/v1/sets/" + setId(setId) + "/name", SetModel.class, b);
    }

    /**
     * @param setId the set
     * @param name the new name
     * @return the set
     */
    public SetModel rename(String setId, String name) {
        return rename(setId, name, null);
    }

    /**
     * Delete a set you own (not possible once a version is published).
     *
     * @param setId the set
     */
    public void deleteSet(String setId) {
        call("DELETE", "/v1/sets/" + setId(setId), null, null);
    }

    /**
     * Fork a set (yours, shared with you, or public) into a new set of yours.
     *
     * @param setId the set
     * @param version the version to fork, or null: the head
     * @param name the new set's name ("": the set's, marked as a fork)
     * @return the new set
     */
    public SetModel duplicate(String setId, Integer version, String name) {
        Map<String, Object> b = body();
        b.put("version", version);
        b.put("name", name == null ? "" : name);
        return send("POST", "/v1/sets/" + setId(setId) + "/duplicate", SetModel.class, b);
    }

    /**
     * @param setId the set
     * @return a fork of its head
     */
    public SetModel duplicate(String setId) {
        return duplicate(setId, null, "");
    }

    /**
     * Change who sees a set and who may edit it.
     *
     * @param setId the set
     * @param visibility private, cluster or public; null: unchanged
     * @param editors users (key ids) who may edit from now on
     * @param revoke users who may no longer edit
     * @return the set
     */
    public SetModel share(String setId, String visibility, Collection<String> editors, Collection<String> revoke) {
        SetModel rs = getSet(setId);
        if (visibility != null) {
            Map<String, Object> b = body();
            b.put("visibility", visibility);
            rs = send("PUT", "/v1/sets/" + rs.id() + "/visibility", SetModel.class, b);
        }
        for (String keyId : editors == null ? List.<String>of() : editors) {
            rs = send("PUT", "/v1/sets/" + rs.id() + "/editors/" + segment(keyId), SetModel.class, null);
        }
        for (String keyId : revoke == null ? List.<String>of() : revoke) {
            rs = send("DELETE", "/v1/sets/" + rs.id() + "/editors/" + segment(keyId), SetModel.class, null);
        }
        return rs;
    }

    /**
     * @param setId the set
     * @param visibility private, cluster or public
     * @return the set
     */
    public SetModel share(String setId, String visibility) {
        return share(setId, visibility, List.of(), List.of());
    }

    /**
     * Be told when a set gets a new version.
     *
     * @param setId the set
     * @return the set ({@code following()} true)
     */
    public SetModel follow(String setId) {
        return send("PUT", "/v1/sets/" + setId(setId) + "/follow", SetModel.class, null);
    }

    /**
     * @param setId the set
     * @return the set ({@code following()} false)
     */
    public SetModel unfollow(String setId) {
        return send("DELETE", "/v1/sets/" + setId(setId) + "/follow", SetModel.class, null);
    }

    /**
     * @param setId the set
     * @return every version, oldest first, with messages, authors and selections
     */
    public List<VersionModel> history(String setId) {
        return list("GET", "/v1/sets/" + setId(setId) + "/versions", VersionModel.class, null, null);
    }

    /**
     * @param setId the set
     * @param number the version
     * @return the version
     */
    public VersionModel version(String setId, int number) {
        return get("/v1/sets/" + setId(setId) + "/versions/" + number, VersionModel.class, null);
    }

    /**
     * The leaves of a version, with sizes and fingerprints, fetched page by page.
     *
     * @param setId the set
     * @param number the version, or null: the head
     * @return the leaves (none when the set has no version yet)
     */
    public List<LeafModel> leaves(String setId, Integer number) {
        Integer n = number != null ? number : getSet(setId).head();
        List<LeafModel> out = new ArrayList<>();
        if (n == null) {
            return out;
        }
        int offset = 0;
        while (true) {
            LeavesModel page = get("/v1/sets/" + setId(setId) + "/versions/" + n + "/leaves", LeavesModel.class,
                    new Query().put("offset", offset).put("limit", 5000));
            out.addAll(page.leaves());
            offset += page.leaves().size();
            if (offset >= page.total() || page.leaves().isEmpty()) {
                return out;
            }
        }
    }

    /**
     * @param setId the set
     * @return the leaves of its head
     */
    public List<LeafModel> leaves(String setId) {
        return leaves(setId, null);
    }

    /**
     * What changed from version {@code old} to {@code newer}, or to a version of another set.
     *
     * @param setId the set
     * @param old the version to compare from
     * @param newer the version to compare to, or null: the head
     * @param other another set to compare to, or null
     * @param limit leaves listed per kind
     * @return the diff; {@code summary()} reads {@code +5 series (2.1 GB) in 3 patients, -1 series}
     */
    public DiffModel diff(String setId, int old, Integer newer, String other, int limit) {
        return get("/v1/sets/" + setId(setId) + "/diff", DiffModel.class, new Query().put("old", old)
                .put("new", newer).put("other", other == null ? null : setId(other)).put("limit", limit));
    }

    /**
     * @param setId the set
     * @param old the version to compare the head with
     * @return the diff
     */
    public DiffModel diff(String setId, int old) {
        return diff(setId, old, null, null, 1000);
    }

    // -- archive updates -----------------------------------------------------------------------

    /**
     * Check sets for archive updates now; blocks while the archives answer. A failing archive is no
     * exception: that answer's {@code error()} says why.
     *
     * @param setIds the sets (empty: every set you follow or own)
     * @param full resolve the sets again in full instead of asking what changed (finds TCIA removals)
     * @return what each check found
     */
    public List<UpdateCheckModel> check(Collection<String> setIds, boolean full) {
        Map<String, Object> b = body();
        b.put("sets", setIds == null || setIds.isEmpty() ? null : setIds.stream().map(Mediator::setId).toList());
        b.put("full", full);
        return list("POST", "/v1/checks", UpdateCheckModel.class, b, null);
    }

    /**
     * @param setIds the sets (none: every set you follow or own)
     * @return what each check found
     */
    public List<UpdateCheckModel> check(String... setIds) {
        return check(List.of(setIds), false);
    }

    /**
     * Check one set for archive updates now ({@code POST /v1/sets/{id}/check}). Not in the Python SDK,
     * whose {@code check(id)} asks {@code /v1/checks}.
     *
     * @param setId the set
     * @return what the check found
     */
    public UpdateCheckModel checkSet(String setId) {
        return send("POST", "/v1/sets/" + setId(setId) + "/check", UpdateCheckModel.class, null);
    }

    /**
     * @param setId the set
     * @return its archive update found by the last check (or none), whether you declined it, the last check
     */
    public TrackModel drift(String setId) {
        return get("/v1/sets/" + setId(setId) + "/drift", TrackModel.class, null);
    }

    /**
     * What changed in the archives: the head against what they hold now.
     *
     * @param setId the set
     * @param limit leaves listed per kind
     * @return the diff
     * @throws MediatorException.NotFound when the set has no update
     */
    public DiffModel driftDiff(String setId, int limit) {
        return get("/v1/sets/" + setId(setId) + "/drift/diff", DiffModel.class, new Query().put("limit", limit));
    }

    /**
     * @param setId the set
     * @return the drift's diff, 1000 leaves per kind at most
     */
    public DiffModel driftDiff(String setId) {
        return driftDiff(setId, 1000);
    }

    /**
     * Take the archive update as the set's next version (owner and editors), or with {@code fork}
     * into a new set of yours.
     *
     * @param setId the set
     * @param fork commit to a new set of yours (what a reader of a public set does)
     * @param name with fork: the new set's name ("": the set's, marked as a fork)
     * @return the new version and its set
     * @throws MediatorException.NotFound when there is no update
     * @throws MediatorException.PermissionDenied for a reader without fork
     */
    public UpdateResult accept(String setId, boolean fork, String name) {
        Map<String, Object> b = body();
        b.put("fork", fork);
        b.put("name", name == null ? "" : name);
        return send("POST", "/v1/sets/" + setId(setId) + "/drift/accept", UpdateResult.class, b);
    }

    /**
     * @param setId the set
     * @return the new version holding the archive update
     */
    public UpdateResult accept(String setId) {
        return accept(setId, false, "");
    }

    /**
     * Decline the set's archive update: you are not told about it again ({@code accept} still takes it).
     *
     * @param setId the set
     * @return the set's update, declined
     */
    public TrackModel dismiss(String setId) {
        return send("DELETE", "/v1/sets/" + setId(setId) + "/drift", TrackModel.class, null);
    }

    /** @return sets you follow or own with an archive update you have not declined */
    public List<SetUpdateModel> updates() {
        return list("GET", "/v1/updates", SetUpdateModel.class, null, null);
    }

    // -- clinical tables and cohorts -----------------------------------------------------------

    /** @return the cluster's clinical tables, each at its latest version */
    public List<TableVersionModel> tables() {
        return list("GET", "/v1/tables", TableVersionModel.class, null, null);
    }

    /**
     * @param name the table
     * @return its latest version and every version
     */
    public TableModel table(String name) {
        return get("/v1/tables/" + segment(name), TableModel.class, null);
    }

    /**
     * Read a table file (CSV, TSV, Excel) on this machine into the cluster's store.
     *
     * @param path the file
     * @param name the table's name, or null: from the file's name
     * @param keyColumn the column of patient keys, or null: guessed
     * @return the table version
     */
    public TableVersionModel addTable(Path path, String name, String keyColumn) {
        Map<String, Object> b = body();
        b.put("path", localFile(path));
        b.put("name", name);
        b.put("key_column", keyColumn);
        return send("POST", "/v1/tables", TableVersionModel.class, b);
    }

    /**
     * What {@link #addTable} would read; nothing is stored.
     *
     * @param path the file
     * @param keyColumn the column of patient keys, or null: guessed
     * @return columns, the key guessed, the first rows and any problems
     */
    public TablePreviewModel previewTable(Path path, String keyColumn) {
        Map<String, Object> b = body();
        b.put("path", localFile(path));
        b.put("key_column", keyColumn);
        return send("POST", "/v1/tables/preview", TablePreviewModel.class, b);
    }

    /**
     * @param name the table
     * @return its columns with their kinds and value ranges
     */
    public List<ColumnModel> tableColumns(String name) {
        return list("GET", "/v1/tables/" + segment(name) + "/columns", ColumnModel.class, null, null);
    }

    /**
     * @param name the table
     * @param column a column
     * @param limit how many values at most
     * @return the column's values, each with its number of rows
     */
    public List<ValueCountModel> tableValues(String name, String column, int limit) {
        return list("GET", "/v1/tables/" + segment(name) + "/columns/" + segment(column) + "/values",
                ValueCountModel.class, null, new Query().put("limit", limit));
    }

    /**
     * The patients of {@code table} whose rows meet every condition:
     * {@code selectPatients("trial", "age>=60", "stage=III,IIIA")}.
     *
     * @param table the table
     * @param conditions {@code age>=60}, {@code age=60..70}, {@code stage=II,IIA}, {@code smoking=*}, {@code smoking=!}
     * @return the patients
     */
    public List<String> selectPatients(String table, String... conditions) {
        Map<String, Object> b = body();
        b.put("conditions", List.of(conditions));
        return send("POST", "/v1/tables/" + segment(table) + "/select", PatientsModel.class, b).patients();
    }

    /**
     * Rows of a table as text.
     *
     * @param name the table
     * @param keys the patients whose rows to answer, or null: all
     * @param limit how many rows at most, or null
     * @return the columns and rows
     */
    public RowsModel tableRows(String name, Collection<String> keys, Integer limit) {
        return get("/v1/tables/" + segment(name) + "/rows", RowsModel.class,
                new Query().put("keys", keys).put("limit", limit));
    }

    /**
     * What a cohort finds in each archive of {@code into}, before a set holds it.
     *
     * @param table the clinical table
     * @param conditions column conditions
     * @param into pointers to join to
     * @return the cohort's pointer, its patients and what each target holds
     */
    public JoinPreviewModel previewJoin(String table, List<String> conditions, List<String> into) {
        Map<String, Object> b = body();
        b.put("table", table);
        b.put("conditions", conditions);
        b.put("targets", pointerTexts(into));
        return send("POST", "/v1/joins/preview", JoinPreviewModel.class, b);
    }

    /**
     * A cohort as one pointer: the patients of {@code table} meeting {@code conditions}, in the
     * archives {@code into}. A set holds it like any other pointer. (The node builds it: this asks
     * {@code /v1/joins/preview}.)
     *
     * @param table the clinical table
     * @param conditions column conditions
     * @param into pointers to join to
     * @return the pointer
     */
    public String cohort(String table, List<String> conditions, List<String> into) {
        if (into == null || into.isEmpty()) {
            throw new MediatorException.ValidationError(
                    "say which archives the cohort joins to: into=[\"idc/nlst\", ...]");
        }
        return previewJoin(table, conditions, into).pointer();
    }

    // -- matching data in other archives -------------------------------------------------------

    /**
     * What the other archives hold for a cohort's patients. Nothing is stored.
     *
     * @param origin pointers into one archive or clinical table (a collection, some patients, a filter)
     * @param patients patients named as well
     * @param into where to look (empty: every other archive with patients)
     * @return per archive the patients found and missing, and the kinds of data they have there
     */
    public MatchModel match(List<String> origin, List<String> patients, List<String> into) {
        Map<String, Object> b = body();
        b.put("origin", pointerTexts(origin == null ? List.of() : origin));
        b.put("patients", patients == null ? List.of() : patients);
        b.put("into", pointerTexts(into == null ? List.of() : into));
        return send("POST", "/v1/matches", MatchModel.class, b);
    }

    /**
     * The rules that hold a match in a set: each origin pointer joined to other archives.
     *
     * <p>Without {@code chosen}, {@code into} are the join targets as given and the rules are built
     * here. With {@code chosen} (per archive the kind labels {@link #match} reported, or null for all
     * it holds), the node maps the kinds to their filters.
     *
     * @param origin pointers into one archive
     * @param into join targets (with chosen: where to look; empty: the archives of chosen)
     * @param chosen per archive the kinds to join, or null
     * @param every keep only the patients with data in every joined archive
     * @return the pointers to add to a set
     */
    public List<String> matchCohort(List<String> origin, List<String> into, Map<String, List<String>> chosen,
            boolean every) {
        List<Pointer> origins = (origin == null ? List.<String>of() : origin).stream().map(Pointer::parse).toList();
        if (origins.isEmpty()) {
            throw new MediatorException.ValidationError(
                    "say whose data to match: origin=\"idc/tcga_luad\" (pointers into one archive)");
        }
        List<String> targets = pointerTexts(into == null ? List.of() : into);
        if (chosen == null) {
            if (targets.isEmpty()) {
                throw new MediatorException.ValidationError(
                        "say where to join the cohort: into=[\"gdc\", ...], or chosen={\"gdc\": [\"RNA-Seq\"]}");
            }
            List<String> out = new ArrayList<>();
            for (Pointer o : origins) {
                out.add(joinCohort(o, targets, every).toString());
            }
            return out;
        }
        Map<String, Object> b = body();
        b.put("origin", origins.stream().map(Pointer::toString).toList());
        b.put("into", targets);
        b.put("chosen", chosen);
        b.put("every", every);
        return send("POST", "/v1/matches/cohort", MatchCohortModel.class, b).pointers();
    }

    /** {@code core.integrator.cohort}: the origin's patients, also in the targets. */
    private static Pointer joinCohort(Pointer origin, List<String> targets, boolean every) {
        List<String> texts = new ArrayList<>(new java.util.TreeSet<>(targets));
        for (String t : texts) {
            if (Pointer.parse(t).source().equals(origin.source())) {
                throw new MediatorException.ValidationError(
                        "a cohort of " + origin.source() + " joins to other archives, not to itself");
            }
        }
        Map<String, List<String>> filters = new LinkedHashMap<>(origin.filters());
        filters.remove(Pointer.JOIN_FILTER);
        filters.remove(Pointer.JOIN_EVERY);
        filters.put(Pointer.JOIN_FILTER, texts);
        if (every) {
            filters.put(Pointer.JOIN_EVERY, List.of("yes"));
        }
        return new Pointer(origin.source(), origin.path(), filters);
    }

    // -- manifest files ------------------------------------------------------------------------

    /**
     * A set version as a file, as bytes: any format, including {@code rocrate} and {@code bdbag} (zips).
     *
     * @param setId the set
     * @param format mediator, gdc, s5cmd, tcia, csv, rocrate or bdbag
     * @param version the version, or null: the head
     * @param files bdbag only: list every file with an MD5 and URL in fetch.txt
     * @return the file's bytes
     * @throws MediatorException.ValidationError when the version holds nothing the format lists
     */
    public byte[] exportSetBytes(String setId, String format, Integer version, boolean files) {
        return request("GET", "/v1/sets/" + setId(setId) + "/export", null, new Query().put("format", format)
                .put("version", version).put("files", files ? "true" : null)).body();
    }

    /**
     * A set version as a text file: {@code mediator} (a set export {@link #importManifest} reads),
     * {@code gdc}, {@code s5cmd}, {@code tcia} or {@code csv}.
     *
     * @param setId the set
     * @param format the format
     * @param version the version, or null: the head
     * @return the file's text
     */
    public String exportSet(String setId, String format, Integer version) {
        return new String(exportSetBytes(setId, format, version, false), StandardCharsets.UTF_8);
    }

    /**
     * @param setId the set
     * @return its head as a set export (JSON)
     */
    public String exportSet(String setId) {
        return exportSet(setId, "mediator", null);
    }

    /**
     * A new set from a manifest file on this machine: a TCIA {@code .tcia}, an IDC {@code .s5cmd}, a GDC
     * manifest, or a set export. Items no archive here holds are in {@code missing()} (logged too).
     *
     * @param path the file
     * @param visibility private, cluster or public
     * @return the set and what was found
     */
    public ImportModel importManifest(Path path, String visibility) {
        Map<String, Object> b = body();
        b.put("path", localFile(path));
        b.put("visibility", visibility);
        ImportModel result = send("POST", "/v1/sets/import", ImportModel.class, b);
        if (result.missing() != null && !result.missing().isEmpty()) {
            LOG.log(System.Logger.Level.WARNING, path.getFileName() + ": " + result.missing().size()
                    + " items not in any archive configured here");
        }
        return result;
    }

    /**
     * @param path the manifest file
     * @return a new private set of it
     */
    public ImportModel importManifest(Path path) {
        return importManifest(path, "private");
    }

    // -- publishing with a DOI -----------------------------------------------------------------

    private int number(String setId, Integer version, boolean published) {
        if (version != null) {
            return version;
        }
        SetModel rs = getSet(setId);
        if (published) {
            if (rs.published() == null || rs.published().isEmpty()) {
                throw new MediatorException.NotFound(
                        "no version of '" + rs.name() + "' is published; publish one first");
            }
            return rs.published().stream().mapToInt(Integer::intValue).max().getAsInt();
        }
        if (rs.head() == null) {
            throw new MediatorException.NotFound("'" + rs.name() + "' has no version yet; add data to it first");
        }
        return rs.head();
    }

    private String versions(String setId, int number) {
        return "/v1/sets/" + setId(setId) + "/versions/" + number;
    }

    /**
     * Metadata to start a publication with: the set's name and description, you as the creator, the
     * publisher setting, this year, the source collections' DOIs.
     *
     * @param setId the set
     * @param version the version, or null: the head
     * @return the suggested DOI record
     */
    public DoiMetadataModel suggestPublication(String setId, Integer version) {
        return get(versions(setId, number(setId, version, false)) + "/publication/suggested",
                DoiMetadataModel.class, null);
    }

    /** How to publish: the DOI record, its landing page, the service, and whether to wait for the DOI. */
    public static final class PublishOptions {
        private DoiMetadataModel metadata;
        private String landingUrl;
        private String service;
        private boolean waitForDoi;
        private Duration timeout = Duration.ofSeconds(60);

        /**
         * @param value the DOI record (null: the suggested one)
         * @return this
         */
        public PublishOptions metadata(DoiMetadataModel value) {
            metadata = value;
            return this;
        }

        /**
         * @param value the https:// page the DOI resolves to (DataCite needs one)
         * @return this
         */
        public PublishOptions landingUrl(String value) {
            landingUrl = value;
            return this;
        }

        /**
         * @param value datacite, zenodo or none (null: the doi_service setting)
         * @return this
         */
        public PublishOptions service(String value) {
            service = value;
            return this;
        }

        /**
         * @param value wait until the DOI is findable or minting failed
         * @param limit how long at most
         * @return this
         */
        public PublishOptions waitForDoi(boolean value, Duration limit) {
            waitForDoi = value;
            timeout = limit;
            return this;
        }
    }

    /**
     * Publish a version for good (it is frozen at once) and have its DOI minted.
     *
     * @param setId the set
     * @param version the version, or null: the head
     * @param options the DOI record and service
     * @return the publication record
     * @throws MediatorException.MetadataProblems when the record breaks rules; {@code problems()} has each by field
     */
    public PublicationModel publish(String setId, Integer version, PublishOptions options) {
        PublishOptions o = options == null ? new PublishOptions() : options;
        int n = number(setId, version, false);
        Map<String, Object> b = body();
        b.put("metadata", o.metadata);
        b.put("landing_url", o.landingUrl);
        b.put("service", o.service);
        PublicationModel record = send("POST", versions(setId, n) + "/publish", PublicationModel.class, b);
        return o.waitForDoi ? waitMinted(record, o.timeout) : record;
    }

    /**
     * @param setId the set
     * @return its head, published with the suggested metadata and the doi_service setting
     */
    public PublicationModel publish(String setId) {
        return publish(setId, null, null);
    }

    private PublicationModel waitMinted(PublicationModel record, Duration limit) {
        long deadline = System.nanoTime() + limit.toNanos();
        long delay = 50;
        PublicationModel r = record;
        while ("queued".equals(r.doiState()) && System.nanoTime() < deadline) {
            try {
                Thread.sleep(delay);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return r;
            }
            delay = Math.min(delay * 2, 1000);
            r = publication(r.setId(), r.version());
        }
        return r;
    }

    /**
     * @param setId the set
     * @param version the version, or null: the latest published
     * @return the publication and how far its DOI got
     * @throws MediatorException.NotFound when the version is not published
     */
    public PublicationModel publication(String setId, Integer version) {
        return get(versions(setId, number(setId, version, true)) + "/publication", PublicationModel.class, null);
    }

    /**
     * Try minting a version's DOI again now.
     *
     * @param setId the set
     * @param version the version, or null: the latest published
     * @param waitLimit wait until findable or failed at most this long, or null: do not wait
     * @return the publication record
     */
    public PublicationModel retryPublication(String setId, Integer version, Duration waitLimit) {
        int n = number(setId, version, true);
        PublicationModel record = send("POST", versions(setId, n) + "/publication/retry", PublicationModel.class,
                null);
        return waitLimit != null ? waitMinted(record, waitLimit) : record;
    }

    /**
     * @param setId the set
     * @param version the version, or null: the latest published
     * @return how a paper cites it: text, BibTeX and a data availability statement
     */
    public CitationModel citation(String setId, Integer version) {
        return get(versions(setId, number(setId, version, true)) + "/citation", CitationModel.class, null);
    }

    /**
     * Keep the DataCite password or the Zenodo token in the node's OS keyring.
     *
     * @param service datacite or zenodo
     * @param secret the password or token
     */
    public void setPublishingSecret(String service, String secret) {
        Map<String, Object> b = body();
        b.put("service", service);
        b.put("secret", secret);
        call("PUT", "/v1/publishing/secret", b, null);
    }

    // -- downloads -----------------------------------------------------------------------------

    /** How to download: version, layout, workers, and a progress listener and cancel token. */
    public static final class DownloadOptions {
        private Integer version;
        private String layout;
        private int workers = 8;
        private boolean prune;
        private List<String> only;
        private boolean verify;
        private ProgressListener progress;
        private CancelToken cancel;
        private Duration timeout;

        /**
         * @param value the version (default: the head)
         * @return this
         */
        public DownloadOptions version(int value) {
            version = value;
            return this;
        }

        /**
         * @param value the folder template, e.g. {@code {collection}/{patient}/{study}/{series}} (default: the node's setting)
         * @return this
         */
        public DownloadOptions layout(String value) {
            layout = value;
            return this;
        }

        /**
         * @param value parallel transfers (1 to 64)
         * @return this
         */
        public DownloadOptions workers(int value) {
            workers = value;
            return this;
        }

        /**
         * @param value delete files whose leaf left the version
         * @return this
         */
        public DownloadOptions prune(boolean value) {
            prune = value;
            return this;
        }

        /**
         * @param leaves only these leaves (pointer texts, e.g. a report's failed keys)
         * @return this
         */
        public DownloadOptions only(Collection<String> leaves) {
            only = List.copyOf(leaves);
            return this;
        }

        /**
         * @param value re-hash every file in place against its MD5
         * @return this
         */
        public DownloadOptions verify(boolean value) {
            verify = value;
            return this;
        }

        /**
         * @param listener told of each change of the download's progress
         * @return this
         */
        public DownloadOptions progress(ProgressListener listener) {
            progress = listener;
            return this;
        }

        /**
         * @param token cancel it (from any thread) to stop the download
         * @return this
         */
        public DownloadOptions cancel(CancelToken token) {
            cancel = token;
            return this;
        }

        /**
         * @param limit how long {@code download} waits at most (default: as long as it runs)
         * @return this
         */
        public DownloadOptions timeout(Duration limit) {
            timeout = limit;
            return this;
        }
    }

    /**
     * Start a download on the node and return at once.
     *
     * @param setId the set
     * @param destination the folder (made absolute here)
     * @param options the options (progress and cancel apply to {@link DownloadHandle#waitFor})
     * @return a handle to wait for, pause, resume or cancel it
     */
    public DownloadHandle startDownload(String setId, Path destination, DownloadOptions options) {
        DownloadOptions o = options == null ? new DownloadOptions() : options;
        Map<String, Object> b = body();
        b.put("set_id", setId(setId));
        b.put("destination", localFile(destination));
        b.put("version", o.version);
        b.put("workers", o.workers);
        b.put("prune", o.prune);
        b.put("only", o.only);
        if (o.verify) { // left out when off: an older node refuses fields it does not know
            b.put("verify", true);
        }
        if (o.layout != null) { // left out: the node's download_layout setting applies
            b.put("layout", o.layout);
        }
        return new DownloadHandle(this, send("POST", "/v1/downloads", JobModel.class, b));
    }

    /**
     * Bring {@code destination} up to a version of a set, and wait. Only leaves new or changed since the
     * folder's last download are fetched.
     *
     * @param setId the set
     * @param destination the folder
     * @param options version, layout, progress listener, cancel token...
     * @return the finished job: state done, failed or cancelled; {@code report()} lists what was fetched and every failure
     * @throws MediatorException.NodeUnreachable when the options' timeout passed first (the job goes on)
     */
    public JobModel download(String setId, Path destination, DownloadOptions options) {
        DownloadOptions o = options == null ? new DownloadOptions() : options;
        DownloadHandle handle = startDownload(setId, destination, o);
        try {
            return handle.waitFor(o.progress, o.cancel, o.timeout);
        } catch (TimeoutException e) {
            throw new MediatorException.NodeUnreachable(e.getMessage() + "; it goes on: see downloads()");
        }
    }

    /**
     * @param setId the set
     * @param destination the folder
     * @return the finished job
     */
    public JobModel download(String setId, Path destination) {
        return download(setId, destination, null);
    }

    /** @return every download job of the node since it started */
    public List<JobModel> downloads() {
        return list("GET", "/v1/downloads", JobModel.class, null, null);
    }

    /**
     * A handle on a download job already running (one of {@link #downloads()}).
     *
     * @param jobId the job's id
     * @return its handle
     */
    public DownloadHandle downloadHandle(String jobId) {
        return new DownloadHandle(this, getJob(jobId, -1, 0));
    }

    JobModel getJob(String jobId, long after, double waitSeconds) {
        return getJob(jobId, after, waitSeconds, false);
    }

    /** {@code untilEnd}: the node answers at the job's end (or after the wait), not at each change. */
    JobModel getJob(String jobId, long after, double waitSeconds, boolean untilEnd) {
        return get("/v1/downloads/" + segment(jobId), JobModel.class,
                new Query().put("after", after).put("wait", waitSeconds).put("until", untilEnd ? "end" : "change"));
    }

    JobModel controlJob(String jobId, String action) {
        return send("POST", "/v1/downloads/" + segment(jobId) + "/" + action, JobModel.class, null);
    }

    // -- settings ------------------------------------------------------------------------------

    /** @return the node's settings, and for each its title, description and whether a change applies at once */
    public SettingsModel settings() {
        return get("/v1/settings", SettingsModel.class, null);
    }

    /**
     * Change settings: {@code changeSettings(Map.of("download_layout", "{patient}/{series}"))}. A bad value
     * raises {@code ValidationError} and changes nothing.
     *
     * @param changes setting names (as in {@link Models.SettingsValues}, snake_case) and new values
     * @return what changed, and what applies when the node starts next
     */
    public SettingsChangeModel changeSettings(Map<String, ?> changes) {
        Map<String, Object> b = body();
        changes.forEach((k, v) -> b.put(k, v instanceof Path p ? p.toString() : v));
        return send("PATCH", "/v1/settings", SettingsChangeModel.class, b);
    }
}
