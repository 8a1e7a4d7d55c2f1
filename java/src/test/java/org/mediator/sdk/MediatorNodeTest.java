package org.mediator.sdk;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.mediator.sdk.Models.DiffModel;
import org.mediator.sdk.Models.ItemModel;
import org.mediator.sdk.Models.JobModel;
import org.mediator.sdk.Models.ProgressModel;
import org.mediator.sdk.Models.SetModel;
import org.mediator.sdk.Models.UpdateResult;
import org.mediator.sdk.Models.VersionModel;

/**
 * The Java SDK against a real headless node ({@code mediator node run}) and the TCIA emulator, both
 * started here: the walkthrough, every typed error, a download with progress, pause and cancel, a
 * second user, and the token proof.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
@Timeout(60)
class MediatorNodeTest {
    @TempDir
    static Path tmp;

    private Processes.TciaEmulator tcia;
    private Processes.TciaEmulator slowTcia;
    private Processes.Node node;
    private Mediator m;

    @BeforeAll
    void start() throws Exception {
        tcia = new Processes.TciaEmulator(tmp.resolve("tcia"), 0.0);
        slowTcia = new Processes.TciaEmulator(tmp.resolve("slow"), 0.5); // each series held half a second
        node = new Processes.Node(tmp.resolve("owner"));
        m = node.connect();
        m.addSource("tcia", Map.of("base_url", tcia.v4));
        m.addSource("tcia", "slow", Map.of("base_url", slowTcia.v4), null);
    }

    @AfterAll
    void stop() {
        if (m != null) {
            m.close();
        }
        if (node != null) {
            node.close();
        }
        for (Processes.TciaEmulator e : new Processes.TciaEmulator[] {tcia, slowTcia}) {
            if (e != null) {
                e.close();
            }
        }
    }

    private static List<Path> files(Path folder) throws IOException {
        try (Stream<Path> walk = Files.walk(folder)) {
            return walk.filter(Files::isRegularFile).toList();
        }
    }

    @Test
    @Order(1)
    void theWalkthroughCreatesSharesDiffsAndDownloadsASet() throws IOException {
        // Browse the archive.
        assertEquals(List.of("tcia", "slow"), m.sources().stream().map(s -> s.id()).filter(
                id -> !id.equals("clinical")).toList());
        List<String> collections = m.browse("tcia").items().stream().map(ItemModel::key).toList();
        assertEquals(List.of("LIDC-IDRI", "SOFT-TISSUE-SARCOMA"), collections);
        assertEquals(List.of("LIDC-IDRI-0001", "LIDC-IDRI-0002"),
                m.browseAll("tcia", "LIDC-IDRI").stream().map(ItemModel::key).toList());
        assertEquals(List.of("SOFT-TISSUE-SARCOMA"), m.search("tcia", "sarcoma").stream().map(ItemModel::key).toList());
        assertTrue(m.values("tcia", "Modality", "LIDC-IDRI").contains("CT"));

        // Create a set, share it with the cluster, change it and diff.
        SetModel rs = m.createSet(new Mediator.NewSet("Lung CT").add("tcia/LIDC-IDRI/LIDC-IDRI-0002")
                .description("two patients of LIDC").message("first patient"));
        assertEquals(1, rs.head());
        assertEquals("private", rs.visibility());
        assertEquals(node.connect().node().keyId(), rs.owner());
        SetModel shared = m.share(rs.id(), "cluster");
        assertEquals("cluster", shared.visibility());
        assertEquals(List.of(rs.id()), m.sets("mine").stream().map(SetModel::id).toList());
        UpdateResult v2 = m.update(rs.id(), new Mediator.SetUpdate().add("tcia/LIDC-IDRI/LIDC-IDRI-0001?Modality=CT")
                .message("and a CT of the first"));
        assertEquals(2, v2.version());
        assertNull(m.add(rs.id(), "tcia/LIDC-IDRI/LIDC-IDRI-0002").version()); // nothing changed: no version
        DiffModel diff = m.diff(rs.id(), 1);
        assertTrue(diff.summary().startsWith("+" + diff.added() + " series"), diff.summary());
        assertTrue(diff.added() > 0 && diff.removed() == 0, diff.toString());
        assertTrue(diff.addedLeaves().stream().allMatch(l -> l.startsWith("tcia/LIDC-IDRI/LIDC-IDRI-0001/")));
        List<VersionModel> history = m.history(rs.id());
        assertEquals(List.of("first patient", "and a CT of the first"),
                history.stream().map(VersionModel::message).toList());
        assertEquals("tcia/LIDC-IDRI/LIDC-IDRI-0001?Modality=CT",
                history.get(1).rules().stream().map(r -> r.pointer().pointer().toString())
                        .filter(p -> p.contains("0001")).findFirst().orElseThrow());
        assertEquals(v2.set().leaves(), m.leaves(rs.id()).size());

        // Download it, with progress; a second run fetches nothing.
        List<ProgressModel> seen = new CopyOnWriteArrayList<>();
        Path out = tmp.resolve("lung-ct");
        JobModel job = m.download(rs.id(), out, new Mediator.DownloadOptions().progress(seen::add));
        assertEquals("done", job.state(), job.error());
        assertEquals(v2.set().leaves(), job.report().fetched().size());
        assertTrue(job.report().failed().isEmpty() && job.report().ok());
        assertFalse(seen.isEmpty());
        assertEquals(v2.set().leaves(), seen.get(seen.size() - 1).itemsDone());
        assertTrue(files(out).stream().anyMatch(p -> p.toString().endsWith(".dcm")));
        JobModel again = m.download(rs.id(), out);
        assertEquals(0, again.report().fetched().size());
        assertEquals(v2.set().leaves(), again.report().unchanged());
        assertTrue(m.downloads().stream().anyMatch(j -> j.id().equals(again.id())));

        // Export it and import the export as a new set; follow, rename, duplicate, delete.
        String export = m.exportSet(rs.id());
        assertTrue(export.contains("\"mediator-set\""), export);
        Path file = tmp.resolve("lung.json");
        Files.writeString(file, export, StandardCharsets.UTF_8);
        Models.ImportModel imported = m.importManifest(file);
        assertEquals("Lung CT 2", imported.set().name()); // an export names its set; the name was taken
        assertEquals(v2.set().leaves(), imported.set().leaves());
        assertTrue(m.follow(rs.id()).following());
        assertFalse(m.unfollow(rs.id()).following());
        assertEquals("Lung CT, LIDC", m.rename(rs.id(), "Lung CT, LIDC").name());
        assertEquals(rs.id(), m.findSet("Lung CT, LIDC").id());
        SetModel fork = m.duplicate(rs.id(), 1, "my fork");
        assertEquals(rs.id(), fork.forkedFrom().setId());
        m.deleteSet(fork.id());
        m.deleteSet(imported.setId());
        assertThrows(MediatorException.NotFound.class, () -> m.getSet(fork.id()));
    }

    @Test
    @Order(2)
    void errorsComeBackTypedWithWhatToDo() {
        SetModel rs = m.createSet("conflicts", "tcia/LIDC-IDRI/LIDC-IDRI-0002");
        m.update(rs.id(), new Mediator.SetUpdate().add("tcia/SOFT-TISSUE-SARCOMA/STS_001").expectedHead(1));
        // a stale head: the conflict names the current one
        MediatorException.Conflict conflict = assertThrows(MediatorException.Conflict.class,
                () -> m.update(rs.id(), new Mediator.SetUpdate().add("tcia/SOFT-TISSUE-SARCOMA/STS_002")
                        .expectedHead(1)));
        assertEquals(2, conflict.currentHead());
        assertEquals("conflict", conflict.code());
        assertEquals(409, conflict.status());
        assertEquals("ConflictError", conflict.error());
        // bad pointers: too deep for the archive's levels, an archive that does not exist, no such key
        MediatorException.ValidationError deep = assertThrows(MediatorException.ValidationError.class,
                () -> m.add(rs.id(), "tcia/a/b/c/d/e"));
        assertTrue(deep.getMessage().contains("4 levels"), deep.getMessage());
        MediatorException.NotFound noSource = assertThrows(MediatorException.NotFound.class,
                () -> m.add(rs.id(), "pacs/LIDC-IDRI"));
        assertTrue(noSource.getMessage().contains("no source 'pacs'"), noSource.getMessage());
        assertThrows(MediatorException.NotFound.class, () -> m.add(rs.id(), "tcia/NO-SUCH-COLLECTION"));
        assertThrows(MediatorException.ValidationError.class, () -> m.add(rs.id(), "tcia/LIDC-IDRI?Modality"));
        // a request the node refuses as malformed: one line, not a dump
        MediatorException.ValidationError visibility = assertThrows(MediatorException.ValidationError.class,
                () -> m.share(rs.id(), "secret"));
        assertEquals("visibility input should be 'private', 'cluster' or 'public'", visibility.getMessage());
        assertEquals(422, visibility.status());
        assertNotNull(visibility.detail());
        assertThrows(MediatorException.ValidationError.class, () -> m.getSet("../../etc"));
        MediatorException.NotFound unknown = assertThrows(MediatorException.NotFound.class,
                () -> m.findSet("nothing like it"));
        assertTrue(unknown.getMessage().startsWith("no set named"), unknown.getMessage());
        assertThrows(MediatorException.NotFound.class, () -> m.getSet("0".repeat(32)));
        assertThrows(MediatorException.NotFound.class, () -> m.accept(rs.id()));
        // an archive that does not answer
        m.addSource("tcia", "gone", Map.of("base_url", "http://127.0.0.1:9/nbia-api/services/v4/"), null);
        try {
            assertThrows(MediatorException.SourceError.class, () -> m.testSource("gone"));
        } finally {
            m.removeSource("gone");
        }
    }

    @Test
    @Order(3)
    void aDownloadReportsProgressPausesResumesAndCancels() throws Exception {
        SetModel rs = m.createSet("slow", "slow/SOFT-TISSUE-SARCOMA");
        assertEquals(24, rs.leaves());
        // Cancelled from the progress listener once the first series arrived.
        CancelToken cancel = new CancelToken();
        List<ProgressModel> seen = new ArrayList<>();
        JobModel job = m.download(rs.id(), tmp.resolve("slow"), new Mediator.DownloadOptions().workers(1)
                .progress(p -> {
                    seen.add(p);
                    if (p.itemsDone() >= 1) {
                        cancel.cancel();
                    }
                }).cancel(cancel).timeout(Duration.ofSeconds(40)));
        assertEquals("cancelled", job.state(), job.summary());
        assertTrue(job.report().cancelled());
        assertTrue(job.report().pending() > 0, job.report().toString());
        int fetched = job.report().fetched().size();
        assertTrue(fetched >= 1 && fetched < 24, job.report().toString());
        assertTrue(seen.stream().anyMatch(p -> p.itemsTotal() == 24 && p.line() != null));

        // Paused, resumed and cancelled through its handle; the next run resumes where it stopped.
        DownloadHandle handle = m.startDownload(rs.id(), tmp.resolve("slow"),
                new Mediator.DownloadOptions().workers(1));
        assertEquals("paused", handle.pause().state());
        assertEquals("running", handle.resume().state());
        handle.cancel();
        JobModel cancelled = handle.waitFor(null, null, Duration.ofSeconds(30));
        assertEquals("cancelled", cancelled.state());
        assertTrue(cancelled.report().unchanged() >= fetched, cancelled.report().toString());
        assertEquals(cancelled.id(), m.downloadHandle(cancelled.id()).job().id());
    }

    @Test
    @Order(4)
    void theTokenIsNotSentToWhateverTookAStoppedNodesPort() throws Exception {
        List<String> seen = new CopyOnWriteArrayList<>();
        HttpServer squatter = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
        squatter.createContext("/", exchange -> {
            seen.add(exchange.getRequestURI() + " " + exchange.getRequestHeaders());
            byte[] body = "{\"proof\": \"0000\"}".getBytes(StandardCharsets.UTF_8);
            exchange.getResponseHeaders().add("Content-Type", "application/json");
            exchange.sendResponseHeaders(200, body.length);
            exchange.getResponseBody().write(body);
            exchange.close();
        });
        squatter.start();
        String token = "t".repeat(43);
        try {
            Path data = tmp.resolve("crashed/data");
            Files.createDirectories(data);
            // a pid that runs (this JVM's): the file looks as fresh as after a crash and reboot
            Files.writeString(data.resolve("local-api.json"), "{\"url\": \"http://127.0.0.1:"
                    + squatter.getAddress().getPort() + "\", \"token\": \"" + token + "\", \"pid\": "
                    + ProcessHandle.current().pid() + ", \"version\": \"0\"}");
            MediatorException.NodeUnreachable refused = assertThrows(MediatorException.NodeUnreachable.class,
                    () -> Mediator.connect(data));
            assertTrue(refused.getMessage().contains("is not the MEDIator node"), refused.getMessage());
            assertTrue(refused.getMessage().contains("the token was not sent"), refused.getMessage());
        } finally {
            squatter.stop(0);
        }
        assertFalse(seen.isEmpty());
        assertTrue(seen.stream().noneMatch(s -> s.contains(token)), seen.toString());
        assertTrue(seen.stream().allMatch(s -> s.startsWith("/v1/proof?challenge=")), seen.toString());

        // The real node proves it; a wrong token is refused before it is sent; no node, no client.
        assertEquals(m.node().version(), node.connect().node().version());
        assertThrows(MediatorException.NodeUnreachable.class,
                () -> Mediator.connect(URI.create(node.api), "not-the-token", Duration.ofSeconds(5)));
        MediatorException.NodeUnreachable none = assertThrows(MediatorException.NodeUnreachable.class,
                () -> Mediator.connect(tmp.resolve("nobody")));
        assertTrue(none.getMessage().contains("mediator node run"), none.getMessage());
    }

    @Test
    @Order(5)
    @Timeout(90)
    void aSecondUserMayNotEditUntilMadeAnEditor() throws Exception {
        SetModel rs = m.createSet(new Mediator.NewSet("team set").add("tcia/LIDC-IDRI/LIDC-IDRI-0002")
                .visibility("cluster"));
        try (Processes.Node second = new Processes.Node(tmp.resolve("reader"), "--join", m.joinCode());
                Mediator reader = second.connect()) {
            String readerKey = reader.node().keyId();
            reader.addSource("tcia", Map.of("base_url", tcia.v4)); // archives are each node's own
            assertFalse(readerKey.equals(m.node().keyId()));
            long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
            while (reader.sets().stream().noneMatch(s -> s.id().equals(rs.id())) && System.nanoTime() < deadline) {
                Thread.sleep(100); // the cluster's log reaches the new member
            }
            SetModel seen = reader.getSet(rs.id());
            assertEquals(rs.owner(), seen.owner());
            MediatorException.PermissionDenied denied = assertThrows(MediatorException.PermissionDenied.class,
                    () -> reader.add(rs.id(), "tcia/LIDC-IDRI/LIDC-IDRI-0001"));
            assertEquals(403, denied.status());
            assertThrows(MediatorException.PermissionDenied.class, () -> reader.deleteSet(rs.id()));
            while (m.users().stream().noneMatch(u -> u.keyId().equals(readerKey)) && System.nanoTime() < deadline) {
                Thread.sleep(100);
            }
            SetModel granted = m.share(rs.id(), null, List.of(readerKey), List.of());
            assertEquals(List.of(readerKey), granted.editors());
            UpdateResult edited = reader.update(rs.id(), new Mediator.SetUpdate().add("tcia/LIDC-IDRI/LIDC-IDRI-0001")
                    .message("by the second user").expectedHead(1));
            assertEquals(2, edited.version());
            assertEquals(readerKey, m.history(rs.id()).get(1).author());
            assertEquals(2, m.cluster().members().size());
            reader.leave(); // the owner's node keeps its quorum alone
        }
    }
}
