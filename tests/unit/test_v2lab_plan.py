"""The lab VM's command lines (pure): what the guest may write, what it boots, what it runs."""

from __future__ import annotations

from tests.v2lab.vm import LabPlan, job_script, kernel_cmdline, qemu_argv

PLAN = LabPlan(
    vmlinux="/k/vmlinux",
    initramfs="/k/init.cpio",
    layer_disks=("/d/top.erofs", "/d/base.erofs"),
    scratch="/r/scratch.img",
    shares=("/work/checkout", "/opt/venv"),
    systemd=True,
    output="/r/output",
)


def test_only_the_scratch_disk_is_writable() -> None:
    argv = qemu_argv(PLAN)
    drives = [argv[i + 1] for i, a in enumerate(argv) if a == "-drive"]
    assert [d for d in drives if "readonly=on" not in d] == [
        "if=none,id=scratch,file=/r/scratch.img,format=raw"
    ]
    fsdevs = [argv[i + 1] for i, a in enumerate(argv) if a == "-fsdev"]
    assert len(fsdevs) == 2 and all(f.endswith(",readonly=on") for f in fsdevs)
    assert "path=/work/checkout," in fsdevs[0] and "path=/opt/venv," in fsdevs[1]


def test_systemd_boots_on_a_pure_cgroup2_hierarchy() -> None:
    line = kernel_cmdline(PLAN).split()
    assert {"cgroup_no_v1=all", "systemd.unified_cgroup_hierarchy=1"} <= set(line)
    assert "v2lab.mode=systemd" in line and "v2lab.layers=2" in line
    plain = kernel_cmdline(LabPlan(**{**PLAN.__dict__, "systemd": False})).split()
    assert "v2lab.mode=plain" in plain


def test_job_runs_the_command_as_given_in_the_checkout() -> None:
    script = job_script(["sh", "-c", "echo 'a b'; exit 3"], "/work/my checkout", {"K": "v w"})
    assert "cd '/work/my checkout' || exit 126" in script
    assert "export K='v w'" in script
    assert script.rstrip().endswith("exec sh -c 'echo '\"'\"'a b'\"'\"'; exit 3'")
