"""JUnit 4 tests: the sources compiled once per submission, one test per box, a keyed report.

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
# Debian's junit4 and its hamcrest (deploy/languages-packages.txt), on the host's /usr.
CLASSPATH_JARS = ("/usr/share/java/junit4.jar", "/usr/share/java/hamcrest.jar")

HARNESS = f"""// Stockade: one JUnit 4 test run, each outcome reported with the host's key.
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.List;
import org.junit.internal.TextListener;
import org.junit.runner.Description;
import org.junit.runner.JUnitCore;
import org.junit.runner.Request;
import org.junit.runner.Result;
import org.junit.runner.notification.Failure;
import org.junit.runner.notification.RunListener;

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

    private static String id(Description d) {{
        return d.getClassName() + "#" + d.getMethodName();
    }}

    public static void main(String[] args) throws Exception {{
        Path keyPath = Paths.get("{harness.KEY_FILE}");
        String key = new String(Files.readAllBytes(keyPath), StandardCharsets.UTF_8).trim();
        Files.delete(keyPath);
        PrintStream report = new PrintStream(new FileOutputStream(FileDescriptor.out), true);
        List<String> outcomes = new ArrayList<>();
        List<String> failed = new ArrayList<>();
        String target = args[0];
        int hash = target.indexOf('#');
        Class<?> cls = Class.forName(hash < 0 ? target : target.substring(0, hash));
        Request request = hash < 0
            ? Request.aClass(cls)
            : Request.method(cls, target.substring(hash + 1));
        JUnitCore core = new JUnitCore();
        core.addListener(new TextListener(System.out));
        core.addListener(new RunListener() {{
            @Override public void testFailure(Failure f) {{
                failed.add(id(f.getDescription()));
                outcomes.add("[" + quote(id(f.getDescription())) + ", \\"call\\", \\"failed\\"]");
            }}
            @Override public void testAssumptionFailure(Failure f) {{
                failed.add(id(f.getDescription()));
                outcomes.add("[" + quote(id(f.getDescription())) + ", \\"call\\", \\"skipped\\"]");
            }}
            @Override public void testIgnored(Description d) {{
                outcomes.add("[" + quote(id(d)) + ", \\"call\\", \\"skipped\\"]");
            }}
            @Override public void testFinished(Description d) {{
                if (!failed.contains(id(d))) {{
                    outcomes.add("[" + quote(id(d)) + ", \\"call\\", \\"passed\\"]");
                }}
            }}
        }});
        Result result = core.run(request);
        int status = result.wasSuccessful() ? 0 : 1;
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
