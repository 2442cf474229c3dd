"""JUnit tests (5 and 4): the sources compiled once per submission, one test per box, a keyed
report.

The harness is the Java twin of harness.py's: it reads the host's key from a file and deletes
it before the test class (and so the student's classes) is loaded, and reports each outcome
with the key on the process's original stdout (see harness.py for what that does and does
not stop)."""

from __future__ import annotations

import posixpath
import secrets

from sandbox.spec import BoxSpec, FileIn, Limits
from worker.grading import harness
from worker.jobs.languages import Language, expand

CLASSES = "classes"
MAIN = "StockadeGraderMain"
# Debian's junit5 (the JUnit Platform with the Jupiter and Vintage engines, so JUnit 5 and
# JUnit 4 tests alike) and junit4 with its hamcrest (deploy/languages-packages.txt), read from
# the host's /usr.
CLASSPATH_JARS = (
    "/usr/share/java/junit-platform-console-standalone.jar",
    "/usr/share/java/junit4.jar",
    "/usr/share/java/hamcrest.jar",
)

HARNESS = f"""// Stockade: one test run on the JUnit Platform, each outcome reported with the key.
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.List;
import org.junit.platform.engine.DiscoverySelector;
import org.junit.platform.engine.TestExecutionResult;
import org.junit.platform.engine.TestSource;
import org.junit.platform.engine.discovery.DiscoverySelectors;
import org.junit.platform.engine.support.descriptor.MethodSource;
import org.junit.platform.launcher.Launcher;
import org.junit.platform.launcher.LauncherDiscoveryRequest;
import org.junit.platform.launcher.TestExecutionListener;
import org.junit.platform.launcher.TestIdentifier;
import org.junit.platform.launcher.core.LauncherDiscoveryRequestBuilder;
import org.junit.platform.launcher.core.LauncherFactory;
import org.junit.platform.launcher.listeners.SummaryGeneratingListener;

public final class {MAIN} {{
    private static String quote(String s) {{
        StringBuilder b = new StringBuilder("\\"");
        for (char c : s.toCharArray()) {{
            if (c == '"' || c == '\\\\') b.append('\\\\').append(c);
            else if (c < 0x20) b.append(String.format("\\\\u%04x", (int) c));
            else b.append(c);
        }}
        return b.append('"').toString();
    }}

    private static String id(TestIdentifier t) {{
        TestSource source = t.getSource().orElse(null);
        if (source instanceof MethodSource) {{
            MethodSource m = (MethodSource) source;
            return m.getClassName() + "#" + m.getMethodName();
        }}
        return t.getUniqueId();
    }}

    private static String outcome(String id, String what) {{
        return "[" + quote(id) + ", \\"call\\", \\"" + what + "\\"]";
    }}

    public static void main(String[] args) throws Exception {{
        Path keyPath = Paths.get("{harness.KEY_FILE}");
        String key = new String(Files.readAllBytes(keyPath), StandardCharsets.UTF_8).trim();
        Files.delete(keyPath);
        PrintStream report = new PrintStream(new FileOutputStream(FileDescriptor.out), true);
        List<String> outcomes = new ArrayList<>();
        String target = args[0];
        int hash = target.indexOf('#');
        // Class, Class#method, or Class#method(int) for a method with parameters.
        DiscoverySelector selector = hash < 0
            ? DiscoverySelectors.selectClass(target)
            : DiscoverySelectors.selectMethod(target);
        LauncherDiscoveryRequest request =
            LauncherDiscoveryRequestBuilder.request().selectors(selector).build();
        SummaryGeneratingListener summary = new SummaryGeneratingListener();
        TestExecutionListener each = new TestExecutionListener() {{
            @Override
            public void executionSkipped(TestIdentifier t, String reason) {{
                outcomes.add(outcome(id(t), "skipped"));
            }}

            @Override
            public void executionFinished(TestIdentifier t, TestExecutionResult r) {{
                if (r.getStatus() != TestExecutionResult.Status.SUCCESSFUL) {{
                    // A class or an engine that failed (an import, a static block) counts too.
                    String what = r.getStatus() == TestExecutionResult.Status.ABORTED
                        ? "skipped" : "failed";
                    outcomes.add(outcome(id(t), what));
                }} else if (t.isTest()) {{
                    outcomes.add(outcome(id(t), "passed"));
                }}
            }}
        }};
        Launcher launcher = LauncherFactory.create();
        launcher.execute(request, summary, each);
        PrintWriter out = new PrintWriter(System.out, true);
        summary.getSummary().printTo(out);
        summary.getSummary().printFailuresTo(out, 20);
        out.flush();
        boolean ok = summary.getSummary().getTotalFailureCount() == 0
            && summary.getSummary().getTestsSucceededCount() > 0;
        int status = ok ? 0 : 1;
        report.print("\\n{harness.MARK}{{\\"key\\": " + quote(key) + ", \\"exit\\": " + status
            + ", \\"outcomes\\": [" + String.join(", ", outcomes) + "]}}\\n");
        report.flush();
        System.exit(status);
    }}
}}
"""


def classpath() -> str:
    # The jars first: a class the student names org.junit.Assert must not replace JUnit's.
    return ":".join((*CLASSPATH_JARS, CLASSES))


def compile_spec(lang: Language, files: dict[str, bytes], rootfs: str) -> BoxSpec:
    """javac over every .java file, the harness's included; -proc:none so no annotation
    processor (code of the student's) runs while compiling."""
    sources = sorted(p for p in files if p.endswith(".java"))
    memory = f"-J-XX:MaxRAM={lang.compile_limits.memory_bytes}"
    argv = (
        "javac",
        memory,
        "-J-XX:+UseSerialGC",
        "-J-XX:TieredStopAtLevel=1",  # C1 only: a short-lived JVM starts faster
        "-encoding",
        "UTF-8",
        "-proc:none",
        "-nowarn",
        "-cp",
        ":".join(CLASSPATH_JARS),
        "-d",
        CLASSES,
        f"{harness.DIR}/{MAIN}.java",
        *sources,
    )
    return BoxSpec(
        argv=argv,
        files=(
            *(FileIn(p, c) for p, c in sorted(files.items())),
            FileIn(f"{harness.DIR}/{MAIN}.java", HARNESS.encode()),
        ),
        env=lang.env,
        limits=lang.compile_limits,
        rootfs=rootfs,
        profile=lang.compile_profile,
        tier=lang.tier,
        collect=(f"{CLASSES}/",),
    )


def run_harness(lang: Language, target: str, limits: Limits) -> harness.Harness:
    key = secrets.token_hex(16)
    run = (
        "java",
        *expand(("-XX:MaxRAM={memory_bytes}",), limits),
        "-XX:+UseSerialGC",
        "-XX:TieredStopAtLevel=1",
        "-Xss64m",
        "-cp",
        classpath(),
        MAIN,
        target,
    )
    return harness.Harness(run, (FileIn(harness.KEY_FILE, key.encode(), 0o600),), key)


def private_classes(sources: set[str], classes: dict[str, bytes]) -> set[str]:
    """The compiled classes of the given sources (a top-level class and its nested ones)."""
    out = set()
    for src in sources:
        stem = posixpath.join(CLASSES, src.removesuffix(".java"))
        for path in classes:
            if path == f"{stem}.class" or path.startswith(f"{stem}$"):
                out.add(path)
    return out
