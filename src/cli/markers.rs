//! `cellvae markers`: marker genes of each cluster (Wilcoxon rank-sum, one cluster against
//! the rest; [`crate::analysis::markers`]), written as scanpy's `rank_genes_groups_df` table.

use super::args::DataArgs;
use super::commands::load_prepared;
use crate::analysis::markers::{rank_genes, GeneTest};
use crate::error::{Error, Result};
use crate::io::atomic::{ensure_parent, write_atomic};
use crate::io::labels::{self, natural_order};
use clap::Args;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Flags of `cellvae markers`.
#[derive(Args, Debug)]
pub struct MarkersArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Clusters CSV, barcode first (`cellvae cluster`'s output, or any per-cell labels)
    #[arg(long)]
    pub clusters: PathBuf,
    /// Column of the clusters file that holds the cluster [default: its second column]
    #[arg(long, value_name = "NAME")]
    pub cluster_column: Option<String>,
    /// Genes written per cluster, highest score first (0: every gene)
    #[arg(long, default_value_t = 100)]
    pub n_genes: usize,
    /// Output CSV: group,names,scores,logfoldchanges,pvals,pvals_adj
    #[arg(long)]
    pub out: PathBuf,
}

/// `cellvae markers`.
pub fn markers(a: &MarkersArgs, quiet: bool) -> Result<()> {
    ensure_parent(&a.out)?;
    let clusters = labels::read(&a.clusters, a.cluster_column.as_deref())?;
    let prep = load_prepared(
        &a.data,
        &a.data.prep_options(crate::models::Preset::Paper)?,
        quiet,
    )?;
    let d = &prep.data;
    let by_barcode = clusters.map();
    let mut names: Vec<String> = d
        .barcodes
        .iter()
        .filter_map(|b| by_barcode.get(b.as_str()).map(|c| c.to_string()))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    if names.is_empty() {
        return Err(Error::data(format!(
            "{}: no barcode matches a cell of the data",
            a.clusters.display()
        )));
    }
    if names.len() < 2 {
        return Err(Error::data(format!(
            "{}: the data's cells fall in one cluster ('{}'); markers need two or more",
            a.clusters.display(),
            names[0]
        )));
    }
    natural_order(&mut names);
    let index: HashMap<&str, usize> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    let groups: Vec<Option<usize>> = d
        .barcodes
        .iter()
        .map(|b| by_barcode.get(b.as_str()).map(|c| index[c]))
        .collect();
    let left_out = groups.iter().filter(|g| g.is_none()).count();
    if !quiet {
        eprintln!(
            "markers: {} clusters over {} cells; {left_out} cells of the data have no cluster in {} and are left out",
            names.len(),
            d.n_cells() - left_out,
            a.clusters.display()
        );
    }
    // On the normalized values of every kept gene, whatever --hvg and --scale say.
    let (matrix, gene_names) = prep.marker_input();
    let tests = rank_genes(&matrix, &groups, names.len());
    write_table(&a.out, &names, &tests, gene_names, a.n_genes)
}

/// Writes the table: per cluster in order, its best `n_genes` genes (0: all).
pub fn write_table(
    path: &Path,
    names: &[String],
    tests: &[Vec<GeneTest>],
    genes: &[String],
    n_genes: usize,
) -> Result<()> {
    write_atomic(path, |w| {
        // The csv writer quotes a cluster or gene name that holds a comma.
        let mut out = csv::Writer::from_writer(w);
        let header = [
            "group",
            "names",
            "scores",
            "logfoldchanges",
            "pvals",
            "pvals_adj",
        ];
        out.write_record(header).map_err(std::io::Error::other)?;
        for (name, group) in names.iter().zip(tests) {
            let take = if n_genes == 0 { group.len() } else { n_genes };
            for t in group.iter().take(take) {
                let numbers = [t.score, t.log_fold_change, t.pval, t.pval_adj].map(number);
                let row = [name.as_str(), genes[t.gene].as_str()].into_iter();
                out.write_record(row.chain(numbers.iter().map(String::as_str)))
                    .map_err(std::io::Error::other)?;
            }
        }
        out.flush()
    })
}

/// The shortest text that reads back as `v`, in scientific notation for tiny or huge values
/// (p-values reach 1e-300; Rust's plain `{}` would write them out in full).
fn number(v: f64) -> String {
    if v != 0.0 && (v.abs() < 1e-4 || v.abs() >= 1e16) {
        format!("{v:e}")
    } else {
        format!("{v}")
    }
}
