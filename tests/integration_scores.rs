//! The integration scores against scib 1.1.7 and scib-metrics 0.5.10 on a fixture: 150 cells
//! in 4 dimensions, 3 batches, 3 labels, partly mixed (`tests/fixtures/integration/`, made by
//! `make_fixtures.py` there). Batch ASW and graph connectivity are scib's exact definitions;
//! LISI is checked cell by cell against scib's own LISI core fed the exact 90 nearest
//! neighbours (the simplification `cellvae::analysis::integration` states), and kBET cell by
//! cell against the fixed-k test on exact neighbours inside each label.

use cellvae::analysis::integration::{
    batch_asw, graph_connectivity, integration_scores, kbet, lisi, LISI_NEIGHBOURS,
};
use cellvae::analysis::neighbors::Neighbors;
use ndarray::Array2;
use serde_json::Value;

struct Fixture {
    x: Array2<f64>,
    batch: Vec<usize>,
    label: Vec<usize>,
    reference: Value,
}

fn fixture() -> Fixture {
    let text = std::fs::read_to_string("tests/fixtures/integration/embedding.csv").unwrap();
    let rows: Vec<Vec<String>> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect();
    let code = |s: &str| (s.as_bytes()[s.len() - 1] as char) as usize;
    let x = Array2::from_shape_fn((rows.len(), 4), |(i, j)| rows[i][3 + j].parse().unwrap());
    let batch = rows.iter().map(|r| code(&r[1]) - '1' as usize).collect();
    let label = rows
        .iter()
        .map(|r| r[2].as_bytes()[0] as usize - b'A' as usize)
        .collect();
    let reference: Value = serde_json::from_str(
        &std::fs::read_to_string("tests/fixtures/integration/reference.json").unwrap(),
    )
    .unwrap();
    Fixture {
        x,
        batch,
        label,
        reference,
    }
}

fn close(got: f64, want: &Value, tolerance: f64, what: &str) {
    let want = want.as_f64().unwrap();
    assert!(
        (got - want).abs() < tolerance,
        "{what}: {got} against {want}"
    );
}

#[test]
fn batch_asw_graph_connectivity_and_kbet_match_scib() {
    let f = fixture();
    let r = &f.reference;
    close(
        batch_asw(&f.x, &f.batch, &f.label).unwrap(),
        &r["batch_asw"]["scib"],
        1e-12,
        "batch ASW",
    );
    let nb = Neighbors::exact(&f.x, LISI_NEIGHBOURS);
    let labels: Vec<Option<usize>> = f.label.iter().map(|&l| Some(l)).collect();
    close(
        graph_connectivity(&nb, &labels, 3).unwrap(),
        &r["graph_connectivity"]["scib"],
        1e-12,
        "graph connectivity",
    );
    close(
        kbet(&f.x, &f.batch, &f.label, 3).unwrap(),
        &r["kbet"]["fixed_k_exact"],
        1e-12,
        "kBET",
    );
}

#[test]
fn lisi_matches_scib_cell_by_cell() {
    let f = fixture();
    let nb = Neighbors::exact(&f.x, LISI_NEIGHBOURS);
    let ilisi = lisi(&nb, &f.batch, 3);
    let clisi = lisi(&nb, &f.label, 3);
    let text = std::fs::read_to_string("tests/fixtures/integration/per_cell.csv").unwrap();
    let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
    let column = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (ci, cc) = (column("ilisi_knn90"), column("clisi_knn90"));
    for (i, line) in text.lines().skip(1).enumerate() {
        let v: Vec<&str> = line.split(',').collect();
        let (want_i, want_c): (f64, f64) = (v[ci].parse().unwrap(), v[cc].parse().unwrap());
        assert!((ilisi[i] - want_i).abs() < 1e-9, "cell {i} iLISI");
        assert!((clisi[i] - want_c).abs() < 1e-9, "cell {i} cLISI");
    }
    let batch: Vec<u32> = f.batch.iter().map(|&b| b as u32).collect();
    let labels: Vec<Option<usize>> = f.label.iter().map(|&l| Some(l)).collect();
    let s = integration_scores(&f.x, &nb, &batch, 3, Some((&labels, 3)), 0);
    let r = &f.reference["lisi_exact_knn90"];
    close(s.ilisi, &r["ilisi_scaled"], 1e-9, "iLISI");
    close(s.clisi.unwrap(), &r["clisi_scaled"], 1e-9, "cLISI");
    assert_eq!(s.sampled_cells, 150);
}

/// kBET cell by cell: the fixture's χ² p-value of each cell's neighbourhood (scipy's
/// `chi2.sf`) against ours, and the acceptance per label averaged as `kbet` averages it.
#[test]
fn kbet_p_values_match_scipy_cell_by_cell() {
    let f = fixture();
    let text =
        std::fs::read_to_string("tests/fixtures/integration/kbet_fixedk_per_cell.csv").unwrap();
    let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
    let column = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (cl, cchi, cp, ca) = (
        column("label"),
        column("chi2"),
        column("p_value"),
        column("accepted"),
    );
    let mut accepted = [0usize; 3];
    let mut cells = [0usize; 3];
    for line in text.lines().skip(1) {
        let v: Vec<&str> = line.split(',').collect();
        let label = (v[cl].as_bytes()[0] - b'A') as usize;
        // Every label here spans at least two batches; C spans two, A and B three.
        let dof = if label == 2 { 1.0 } else { 2.0 };
        let (chi2, p): (f64, f64) = (v[cchi].parse().unwrap(), v[cp].parse().unwrap());
        let ours = cellvae::analysis::integration::chi_square_survival(chi2, dof);
        assert!(
            (ours - p).abs() <= 1e-12 * p.max(1e-300) + 1e-15,
            "{line}: {ours}"
        );
        cells[label] += 1;
        accepted[label] += usize::from(v[ca] == "1");
    }
    let mean = (0..3)
        .map(|l| accepted[l] as f64 / cells[l] as f64)
        .sum::<f64>()
        / 3.0;
    let ours = kbet(&f.x, &f.batch, &f.label, 3).unwrap();
    assert!((ours - mean).abs() < 1e-12, "{ours} against {mean}");
}
