//! Failures end to end: the bad-input corpus (`tests/bad_inputs/cases.tsv`), each case a
//! clean error that leaves no output behind, and an absurd thread count refused at once.

mod common;

use common::cli::*;
use std::fs;

/// Every case of the corpus: its exit code, no panic, one `error:` line (the last, for a
/// run-time error), and nothing left at its output path.
#[test]
fn bad_inputs_fail_cleanly() {
    let work = scratch("bad");
    let ckpt = tiny_checkpoint(&work);
    let truncated = work.join("truncated.safetensors");
    let bytes = fs::read(&ckpt).unwrap();
    fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let manifest = fs::read_to_string("tests/bad_inputs/cases.tsv").unwrap();
    let mut n = 0;
    for line in manifest
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let f: Vec<&str> = line.split('\t').collect();
        let (name, code, args) = (f[0], f[1].parse::<i32>().unwrap(), f[2]);
        let out_dir = work.join(format!("out-{name}"));
        let args: Vec<String> = args
            .split(' ')
            .map(|a| {
                a.replace("{case}", "tests/bad_inputs")
                    .replace("{tiny}", TINY)
                    .replace("{out}", out_dir.to_str().unwrap())
                    .replace("{ckpt_truncated}", truncated.to_str().unwrap())
                    .replace("{ckpt}", ckpt.to_str().unwrap())
            })
            .collect();
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        clean_failure(name, &cellvae(&argv), code);
        assert!(
            files(&out_dir).is_empty(),
            "{name}: left output behind: {:?}",
            files(&out_dir)
        );
        n += 1;
    }
    assert!(n >= 25, "the corpus has only {n} cases");
}

/// An absurd thread count is refused at once (it used to hang while the threads started).
#[test]
fn absurd_thread_count_fails_fast() {
    let started = std::time::Instant::now();
    let out = cellvae(&[
        "score",
        "--threads",
        "100000",
        "--truth",
        "x.csv",
        "--pred",
        "x.csv",
    ]);
    assert!(
        started.elapsed().as_secs_f64() < 1.0,
        "{:?}",
        started.elapsed()
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("error: --threads 100000"), "{err}");
}
