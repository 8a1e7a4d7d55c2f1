package org.mediator.sdk;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * The real programs the tests talk to, each in its own process, started and stopped by the tests:
 * a headless node ({@code mediator node run}) in a private MEDIATOR_HOME, and the TCIA emulator of
 * {@code tests/helpers/tcia_emulator.py}. Where they are: the system property {@code mediator.repo}
 * (the checkout; {@code java/build.sh} sets it) and the environment variable {@code MEDIATOR_PYTHON}
 * (default: the checkout's {@code .venv/bin/python}).
 */
final class Processes {
    private Processes() {
    }

    /** Every process started here, stopped when the JVM exits however the tests ended. */
    private static final List<Process> STARTED = new java.util.concurrent.CopyOnWriteArrayList<>();

    static {
        Runtime.getRuntime().addShutdownHook(new Thread(() -> STARTED.forEach(Processes::stop)));
    }

    private static Process start(ProcessBuilder pb) throws IOException {
        Process proc = pb.start();
        STARTED.add(proc);
        return proc;
    }

    static Path repo() {
        String repo = System.getProperty("mediator.repo");
        if (repo == null || repo.isEmpty()) {
            throw new IllegalStateException("set -Dmediator.repo=CHECKOUT (java/build.sh does)");
        }
        return Path.of(repo);
    }

    static String python() {
        String python = System.getenv("MEDIATOR_PYTHON");
        return python != null && !python.isEmpty() ? python : repo().resolve(".venv/bin/python").toString();
    }

    /** Wait until {@code path} holds a line for which {@code ready} is true, or the process ended. */
    private static String awaitLine(Process proc, Path path, Path log, java.util.function.Predicate<String> ready,
            Duration timeout, String what) throws IOException, InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        long delay = 20;
        while (System.nanoTime() < deadline) {
            if (Files.exists(path)) {
                for (String line : Files.readAllLines(path, StandardCharsets.UTF_8)) {
                    if (ready.test(line)) {
                        return line;
                    }
                }
            }
            if (!proc.isAlive()) {
                throw new IllegalStateException(what + " exited with " + proc.exitValue() + ":\n" + tail(log));
            }
            Thread.sleep(delay);
            delay = Math.min(delay * 2, 200);
        }
        stop(proc);
        throw new IllegalStateException(what + " did not start within " + timeout + ":\n" + tail(log));
    }

    private static String tail(Path log) throws IOException {
        if (!Files.exists(log)) {
            return "";
        }
        List<String> lines = Files.readAllLines(log, StandardCharsets.UTF_8);
        return String.join("\n", lines.subList(Math.max(0, lines.size() - 30), lines.size()));
    }

    /** SIGTERM, wait, then SIGKILL; reaped either way. */
    static void stop(Process proc) {
        if (proc == null || !proc.isAlive()) {
            return;
        }
        proc.destroy();
        try {
            if (!proc.waitFor(20, TimeUnit.SECONDS)) {
                proc.destroyForcibly();
                proc.waitFor(10, TimeUnit.SECONDS);
            }
        } catch (InterruptedException e) {
            proc.destroyForcibly();
            Thread.currentThread().interrupt();
        }
    }

    /** {@code mediator node run} in its own MEDIATOR_HOME, without archives but those the test adds. */
    static final class Node implements AutoCloseable {
        final Path home;
        final Path dataDir;
        final String api;
        private final Process proc;

        Node(Path home, String... args) throws IOException, InterruptedException {
            this.home = home;
            Files.createDirectories(home.resolve("config"));
            // no archive (not even IDC's index) until a test adds one; no background update checks
            Files.writeString(home.resolve("config/settings.json"),
                    "{\"sources\": [], \"update_check_minutes\": 0}\n", StandardCharsets.UTF_8);
            List<String> command = new ArrayList<>(List.of(python(), "-m", "mediator_desktop.cli", "--json",
                    "node", "run"));
            command.addAll(List.of(args));
            ProcessBuilder pb = new ProcessBuilder(command).directory(repo().toFile());
            Map<String, String> env = pb.environment();
            env.put("MEDIATOR_HOME", home.toString());
            env.put("MEDIATOR_DISCOVERY", "off");
            env.put("MEDIATOR_IDC_INDEX_URL", "http://127.0.0.1:9/");
            env.put("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring");
            env.remove("http_proxy");
            env.remove("HTTP_PROXY");
            Path out = home.resolve("node.out");
            Path err = home.resolve("node.err");
            pb.redirectOutput(out.toFile()).redirectError(err.toFile());
            proc = start(pb);
            String ready = awaitLine(proc, out, err, l -> l.contains("\"ready\""), Duration.ofSeconds(60),
                    "mediator node run");
            com.google.gson.JsonObject json = com.google.gson.JsonParser.parseString(ready).getAsJsonObject();
            api = json.get("api").getAsString();
            dataDir = Path.of(json.get("data_dir").getAsString());
        }

        Mediator connect() {
            return Mediator.connect(dataDir);
        }

        @Override
        public void close() {
            stop(proc);
        }
    }

    /** The TCIA emulator (its catalogue from IDC's index), each series' images held {@code delay} seconds. */
    static final class TciaEmulator implements AutoCloseable {
        private static final String SCRIPT = String.join("\n",
                "import sys",
                "from tests.helpers.tcia_emulator import TciaEmulator, catalogue_from_idc",
                "emulator = TciaEmulator(catalogue_from_idc(['lidc_idri', 'soft_tissue_sarcoma'], 2, 3, 8), port=0)",
                "emulator.image_delay = float(sys.argv[1])",
                "emulator.start()",
                "print(emulator.v4, flush=True)",
                "sys.stdin.read()  # until the test closes our stdin (or ends)",
                "emulator.stop()");
        final String v4;
        private final Process proc;

        TciaEmulator(Path dir, double delay) throws IOException, InterruptedException {
            Files.createDirectories(dir);
            ProcessBuilder pb = new ProcessBuilder(python(), "-c", SCRIPT, Double.toString(delay))
                    .directory(repo().toFile());
            Path out = dir.resolve("emulator.out");
            Path err = dir.resolve("emulator.err");
            pb.redirectOutput(out.toFile()).redirectError(err.toFile());
            proc = start(pb);
            v4 = awaitLine(proc, out, err, l -> l.startsWith("http://"), Duration.ofSeconds(60), "the TCIA emulator")
                    .strip();
        }

        @Override
        public void close() {
            try (OutputStream in = proc.getOutputStream()) {
                in.flush();
            } catch (IOException e) {
                // already gone
            }
            try {
                if (!proc.waitFor(5, TimeUnit.SECONDS)) {
                    stop(proc);
                }
            } catch (InterruptedException e) {
                stop(proc);
                Thread.currentThread().interrupt();
            }
        }
    }
}
