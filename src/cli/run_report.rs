//! The run's own outputs once every model is evaluated: the score and loss figures,
//! `summary.csv`, `report.md` and the console table ([`write_run_outputs`]); over several
//! seeds, the top-level report ([`write_seeds_report`]).

use super::pipeline::RunArgs;
use super::run_outputs::RunContext;
use crate::error::Result;
use crate::io::align::CellTypes;
use crate::preprocess::Prepared;
use crate::report::plots;
use crate::report::seeds;
use crate::report::summary::{self, ReportContext};
use crate::study::outcome::ModelOutcome;
use crate::train::EpochRecord;
use std::time::Instant;

/// The run's own outputs, from every model's outcome: the score and loss figures,
/// `summary.csv`, `report.md`, and the score table on stdout.
pub(super) fn write_run_outputs(
    ctx: &RunContext<'_>,
    prep: &Prepared,
    outcomes: &[ModelOutcome],
    started: Instant,
) -> Result<()> {
    let a = ctx.args;
    let score_rows: Vec<(String, [f64; 4])> = outcomes
        .iter()
        .filter_map(|o| {
            o.scores.and_then(|s| s.tsne_kmeans).map(|s| {
                (
                    o.name.clone(),
                    [s.nmi_geometric, s.ari, s.homogeneity, s.completeness],
                )
            })
        })
        .collect();
    if !score_rows.is_empty() {
        plots::score_bars(&ctx.out.join("scores.png"), &score_rows)?;
    }
    let curves: Vec<(String, Vec<EpochRecord>)> = outcomes
        .iter()
        .filter(|o| !o.records.is_empty())
        .map(|o| (o.name.clone(), o.records.clone()))
        .collect();
    if !curves.is_empty() {
        plots::loss_curves(&ctx.out.join("losses.png"), &curves)?;
    }
    summary::write_summary_csv(&ctx.out.join("summary.csv"), outcomes)?;
    let command = command_line();
    let opts = ctx.opts;
    let cfg_json = serde_json::Value::Object(
        opts.models
            .iter()
            .filter_map(|m| m.kind())
            .map(|kind| (kind.name().to_string(), opts.network(kind).to_json()))
            .collect(),
    );
    let d = &prep.data;
    let report = ReportContext {
        command: &command,
        data: &a
            .data
            .data
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        cells: d.n_cells(),
        genes: d.n_genes(),
        labelled: ctx.types.map_or(0, CellTypes::labelled),
        k: ctx.k,
        preset: opts.preset.name(),
        epochs: opts.train.epochs,
        seed: opts.train.seed,
        threads: rayon::current_num_threads(),
        notes: &prep.notes,
        configs: cfg_json,
        total_seconds: started.elapsed().as_secs_f64(),
        n_init: opts.eval.restarts(d.n_cells()),
        tsne_skipped: opts.eval.tsne_skipped(d.n_cells()),
    };
    summary::write_report(&ctx.out.join("report.md"), outcomes, &report)?;
    println!("{}", summary::table(outcomes));
    Ok(())
}

/// The top-level `report.md` of a run over several seeds: the mean ± sd table and a link to
/// each seed's own report.
pub(super) fn write_seeds_report(
    a: &RunArgs,
    seeds: &[u64],
    all: &[ModelOutcome],
    started: Instant,
) -> Result<()> {
    let command = command_line();
    let mut r = format!(
        "# cellvae report: {} training seeds\n\nReproduce with:\n\n```\n{command}\n```\n\n\
         Mean ± sample sd over the seeds {:?} (every random stream of a seed's run follows it; \
         the validation split does not). Total {:.1} s.\n\n",
        seeds.len(),
        seeds,
        started.elapsed().as_secs_f64()
    );
    r.push_str(&seeds::mean_table(all));
    r.push_str("\nEvery row and seed: `summary.csv`; means and sds of every column: `summary_mean.csv`.\n\n");
    for s in seeds {
        r.push_str(&format!(
            "- seed {s}: [seed-{s}/report.md](seed-{s}/report.md)\n"
        ));
    }
    crate::io::atomic::write_atomic(&a.out.join("report.md"), |w| w.write_all(r.as_bytes()))
}

/// The command as it was typed, for the reports' "Reproduce with" line.
fn command_line() -> String {
    std::iter::once("cellvae".to_string())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ")
}
