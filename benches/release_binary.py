"""The release binary the bench scripts run, rebuilt first when its sources have changed.

`cargo bench` writes `target/release/cellvae` too, from the sources as they were when it ran;
a script that then ran that file after the sources had changed would time and score other code
(this happened once: the binary of a timing-only experiment outlived the experiment's revert,
and a whole run scored 0.16 NMI). `cargo build --release` is a no-op when the binary is
current, so every script calls this before it runs the default binary.
"""
import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT = os.path.join(ROOT, "target", "release", "cellvae")


def release_binary(path=DEFAULT):
    """`path`, after `cargo build --release --bin cellvae` when it is the default binary (a
    copy given with `--binary` is run as it is)."""
    if os.path.abspath(path) == DEFAULT:
        subprocess.run(["cargo", "build", "--release", "--bin", "cellvae"], cwd=ROOT, check=True)
    return path
