//! Atlas scale, CI-sized: a run on 60,000 generated cells (above the t-SNE threshold, so the
//! path a million cells take) whose peak memory is checked against a bound, and a truncated
//! `.h5ad` that fails cleanly. The cells come from [`cellvae::io::atlas`], drawn from the
//! shipped PBMC3k.

mod common;

use cellvae::io::atlas::{write_atlas, AtlasOptions};
use cellvae::io::{labels, read_dataset, ReadOptions};
use common::cli::{arg, cellvae, fails, scratch};
use std::path::{Path, PathBuf};

/// `cells` generated cells in `dir/atlas.h5ad`.
fn atlas(dir: &Path, cells: usize) -> PathBuf {
    let data = read_dataset(Path::new("data/pbmc3k"), &ReadOptions::default()).unwrap();
    let types = labels::read(Path::new("data/pbmc3k/labels.csv"), None).unwrap();
    let path = dir.join("atlas.h5ad");
    write_atlas(
        &data,
        &types.map(),
        &path,
        &AtlasOptions::new(cells),
        |_| {},
    )
    .unwrap();
    path
}

/// The bound on a `--preset scrna` run of one network on 60,000 cells (43.5 M nonzeros):
/// 800 MB. Measured 533 MB at commit `53d3a37` (Intel Xeon, two threads); 695 MB at
/// `09196ce`, before every kept gene was held as 16-bit counts; 2.13 GB before the scaled
/// input was stored sparse and preprocessing and the markers stopped copying whole matrices,
/// 3.44 GB before `cellvae.h5ad` was streamed. A regression guard, not the atlas target: a
/// million cells in 8 GB is 8 KB per cell, and this run takes about 9 KB per cell (its fixed
/// costs weigh more at this size; docs/scale.md says where the memory goes).
const PEAK_BOUND_BYTES: u64 = 800_000_000;

#[test]
fn a_run_on_sixty_thousand_cells_stays_within_its_memory_bound() {
    let dir = scratch("scale-memory");
    let h5ad = atlas(&dir, 60_000);
    let out = dir.join("out");
    let args = [
        "run",
        "--data",
        arg(&h5ad),
        "--labels-from-obs",
        "cell_type",
        "--preset",
        "scrna",
        "--models",
        "vae",
        "--epochs",
        "1",
        "--out",
        arg(&out),
    ];
    let o = cellvae(&args);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(stderr.contains("t-SNE skipped"), "{stderr}");
    let last = stderr.trim_end().lines().last().unwrap();
    let mb: u64 = last
        .split("peak memory ")
        .nth(1)
        .and_then(|s| s.strip_suffix(" MB"))
        .unwrap_or_else(|| panic!("no peak memory in {last:?}"))
        .parse()
        .unwrap();
    assert!(
        mb * 1_000_000 <= PEAK_BOUND_BYTES,
        "peak {mb} MB above the bound of {PEAK_BOUND_BYTES} bytes"
    );
    // Every output a small run writes, but t-SNE's; protocol 1 empty, not 0.
    for f in ["summary.csv", "report.md", "cellvae.h5ad", "vae/umap.csv"] {
        assert!(out.join(f).is_file(), "{f}");
    }
    assert!(!out.join("vae/tsne2d.csv").exists());
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains("peak memory") && report.contains("t-SNE was skipped"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// An `.h5ad` cut short (a copy interrupted half-way): one clear error naming the file,
/// exit 1, and nothing left in the output directory.
#[test]
fn a_truncated_h5ad_fails_cleanly() {
    let dir = scratch("truncated");
    let h5ad = atlas(&dir, 3000);
    let bytes = std::fs::read(&h5ad).unwrap();
    for cut in [bytes.len() / 2, bytes.len() * 9 / 10] {
        let short = dir.join(format!("cut{cut}.h5ad"));
        std::fs::write(&short, &bytes[..cut]).unwrap();
        let out = dir.join(format!("out{cut}"));
        let error = fails(
            &[
                "run",
                "--data",
                arg(&short),
                "--epochs",
                "1",
                "--out",
                arg(&out),
            ],
            &out,
        );
        assert!(error.contains(arg(&short)), "{error}");
        let error = fails(
            &["preprocess", "--data", arg(&short), "--out", arg(&out)],
            &out,
        );
        assert!(
            error.contains("EOF") || error.contains("truncated"),
            "{error}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
