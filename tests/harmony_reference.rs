//! Harmony against harmonypy 2.1.0. harmonypy's random choices (its start cells and the
//! order of every clustering round) are recorded in the fixtures and replayed
//! (`Draws::Recorded`), so the two runs take the same path and their outputs can be compared
//! value by value. harmonypy computes in f32, this port in f64: the corrected PCs must agree
//! to 1e-4 (absolute; they reach ±48; measured: at most 1.3e-5), the soft assignments to 1e-5
//! (measured: 8e-7), the objective to 1e-5 relative, and the number of iterations exactly.
//!
//! Fixtures (`tests/fixtures/harmony/`, made by `make_fixture.py` beside them with
//! `harmony_ref.py` and `cpp_rng.py`, which replicate harmonypy's C++ draws): a 60-cell
//! synthetic case (`tiny.json`) and the development set, cellbench's 499 cells on two
//! platforms (scanpy's recipe to 50 PCs), with harmonypy's defaults (one iteration there) and
//! with `epsilon_harmony = 0` (ten).

use cellvae::analysis::harmony::{harmony, Draws, HarmonyOptions};
use flate2::read::GzDecoder;
use ndarray::Array2;
use serde_json::Value;
use std::io::Read;

const Z_TOLERANCE: f64 = 1e-4;
const R_TOLERANCE: f64 = 1e-5;
const OBJECTIVE_TOLERANCE: f64 = 1e-5;

fn matrix(v: &Value) -> Array2<f64> {
    let rows: Vec<Vec<f64>> = serde_json::from_value(v.clone()).unwrap();
    Array2::from_shape_fn((rows.len(), rows[0].len()), |(i, j)| rows[i][j])
}

fn max_abs_diff(a: &Array2<f64>, b: &Array2<f64>) -> f64 {
    assert_eq!(a.dim(), b.dim());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

fn check_objective(got: &[f64], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: iterations");
    for (g, w) in got.iter().zip(want) {
        assert!(
            ((g - w) / w).abs() < OBJECTIVE_TOLERANCE,
            "{what}: objective {g} against {w}"
        );
    }
}

#[test]
fn tiny_case_replays_harmonypy() {
    let text = std::fs::read_to_string("tests/fixtures/harmony/tiny.json").unwrap();
    let fx: Value = serde_json::from_str(&text).unwrap();
    let z = matrix(&fx["Z"]);
    let batch: Vec<u32> = serde_json::from_value(fx["batch"].clone()).unwrap();
    for run in ["plain", "plain_10iter", "pinned", "pinned_10iter"] {
        let r = &fx[run];
        let initial_cells: Vec<usize> = match r.get("kmeanspp_indices") {
            Some(v) => serde_json::from_value(v.clone()).unwrap(),
            None => serde_json::from_value(r["init_indices"].clone()).unwrap(),
        };
        let orders: Vec<Vec<usize>> = serde_json::from_value(r["perms"].clone()).unwrap();
        let mut opts = HarmonyOptions::new();
        opts.clusters = Some(3);
        opts.epsilon_harmony = r["params"]["epsilon_harmony"].as_f64().unwrap();
        let h = harmony(
            &z,
            &batch,
            2,
            &opts,
            &Draws::Recorded {
                initial_cells,
                orders,
            },
        )
        .unwrap();
        let dz = max_abs_diff(&h.corrected, &matrix(&r["Z_corr"]));
        let dr = max_abs_diff(&h.assignments, &matrix(&r["R"]));
        assert!(dz < Z_TOLERANCE, "{run}: corrected PCs differ by {dz:e}");
        assert!(dr < R_TOLERANCE, "{run}: assignments differ by {dr:e}");
        let want: Vec<f64> = serde_json::from_value(r["objective_harmony"].clone()).unwrap();
        check_objective(&h.objective, &want, run);
        assert_eq!(
            h.iterations,
            r["n_harmony_iterations"].as_u64().unwrap() as usize
        );
    }
}

fn gz_lines(name: &str) -> Vec<String> {
    let mut text = String::new();
    GzDecoder::new(std::fs::File::open(format!("tests/fixtures/harmony/{name}")).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    text.lines().map(str::to_string).collect()
}

fn numbers(line: &str, sep: char) -> Vec<f64> {
    line.split(sep).map(|v| v.parse().unwrap()).collect()
}

#[test]
fn cellbench_replays_harmonypy() {
    let rows: Vec<Vec<f64>> = gz_lines("cellbench_pcs.csv.gz")
        .iter()
        .map(|l| numbers(l, ','))
        .collect();
    let batch: Vec<u32> = rows.iter().map(|r| r[0] as u32).collect();
    let pcs = Array2::from_shape_fn((rows.len(), 50), |(i, j)| rows[i][j + 1]);
    for (run, epsilon, iterations) in [("plain", 1e-2, 1), ("plain_10iter", 0.0, 10)] {
        let draws = gz_lines(&format!("cellbench_{run}_draws.csv.gz"));
        let as_cells =
            |l: &str| -> Vec<usize> { numbers(l, ' ').iter().map(|&v| v as usize).collect() };
        let mut opts = HarmonyOptions::new();
        opts.epsilon_harmony = epsilon;
        let h = harmony(
            &pcs,
            &batch,
            2,
            &opts,
            &Draws::Recorded {
                initial_cells: as_cells(&draws[0]),
                orders: draws[1..].iter().map(|l| as_cells(l)).collect(),
            },
        )
        .unwrap();
        let want: Vec<Vec<f64>> = gz_lines(&format!("cellbench_{run}_corrected.csv.gz"))
            .iter()
            .map(|l| numbers(l, ','))
            .collect();
        let want = Array2::from_shape_fn((want.len(), 50), |(i, j)| want[i][j]);
        let dz = max_abs_diff(&h.corrected, &want);
        assert!(dz < Z_TOLERANCE, "{run}: corrected PCs differ by {dz:e}");
        assert_eq!(h.iterations, iterations, "{run}");
    }
}
