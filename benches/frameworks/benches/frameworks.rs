//! cellvae against candle, a Rust framework, per training epoch: the three `paper` models
//! (`docs/math.md#2-presets`) on the shipped PBMC3k, the same preprocessed matrix, batch (256),
//! optimizer (Adam, learning rate 1e-3) and loss, run in turn so both see the same machine.
//!
//!     cargo bench -p cellvae-frameworks [-- --epochs 6 --rounds 3 --models ae,vae,vsc]
//!
//! Each side trains `--epochs` epochs per round; a round's figure is the median of its epochs
//! after the first (warm-up); the table gives the median over the rounds. Both sides use every
//! core rayon sees (`RAYON_NUM_THREADS`, which candle's GEMM reads too).
//!
//! candle runs the textbook form: a dense `(B, 13,714)` input batch into `Linear` layers, its
//! autograd and `AdamW` with weight decay 0 (Adam). cellvae runs its own engine: the sparse
//! first layer and the fused Gram-form output layer and loss. The weights start from different
//! draws (each framework's own initialiser); the work per epoch does not depend on them.

use candle_core::{DType, Device, Tensor};
use candle_nn::{Init, Linear, Module, Optimizer, VarBuilder, VarMap};
use cellvae::csr::Csr;
use cellvae::io::{read_dataset, ReadOptions};
use cellvae::models::{ModelConfig, ModelKind, Network, Preset};
use cellvae::preprocess::{prepare, PrepOptions};
use cellvae::train::progress::Progress;
use cellvae::train::{train, TrainOptions};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::path::Path;
use std::time::Instant;

const BATCH: usize = 256;
const LATENT: usize = 6;
const BETA: f64 = 2.0;
/// The VSC's selection sharpness c and prior spike probability α (the study's values).
const VSC_C: f64 = 50.0;
const VSC_ALPHA: f64 = 0.5;

struct Args {
    epochs: usize,
    rounds: usize,
    models: Vec<ModelKind>,
}

fn parse_args() -> Args {
    let mut args = Args {
        epochs: 6,
        rounds: 3,
        models: ModelKind::ALL.to_vec(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--epochs" => args.epochs = value().parse().expect("--epochs: a whole number"),
            "--rounds" => args.rounds = value().parse().expect("--rounds: a whole number"),
            "--models" => {
                args.models = value()
                    .split(',')
                    .map(|m| ModelKind::parse(m).expect("--models: ae, vae, vsc"))
                    .collect()
            }
            _ => {} // cargo bench passes --bench; other harness flags are not ours
        }
    }
    assert!(
        args.epochs >= 2,
        "--epochs: at least 2 (the first is warm-up)"
    );
    args
}

/// The study's input: shipped PBMC3k after Seurat QC and LogNormalize.
fn pbmc3k() -> Csr<f32> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/pbmc3k");
    let raw = read_dataset(&root, &ReadOptions::default()).expect("data/pbmc3k");
    prepare(raw, &PrepOptions::default())
        .expect("preprocess")
        .data
        .matrix
}

fn dense(x: &Csr<f32>) -> Vec<f32> {
    let mut out = vec![0.0; x.n_rows * x.n_cols];
    for i in 0..x.n_rows {
        let (cols, vals) = x.row(i);
        for (&j, &v) in cols.iter().zip(vals) {
            out[i * x.n_cols + j as usize] = v;
        }
    }
    out
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// What one side's run gives: seconds per epoch after the first, and the loss per cell of the
/// last epoch (both sides should train alike).
struct Run {
    seconds: Vec<f64>,
    last_loss: f64,
}

/// cellvae's own training loop.
fn cellvae_epochs(kind: ModelKind, x: &Csr<f32>, epochs: usize, seed: u64) -> Run {
    let cfg = ModelConfig::preset(kind, Preset::Paper);
    let mut net = Network::<f32>::new(cfg, x.n_cols, seed).expect("network");
    let opts = TrainOptions {
        batch_size: BATCH,
        epochs,
        seed,
        ..TrainOptions::default()
    };
    let records = train(&mut net, x, &opts, &mut Progress::quiet()).expect("train");
    Run {
        seconds: records.iter().skip(1).map(|r| r.seconds).collect(),
        last_loss: records.last().map_or(f64::NAN, |r| r.loss),
    }
}

/// A `paper` network in candle: the same layers, activations and heads as
/// [`ModelConfig::preset`] with [`Preset::Paper`].
struct CandleNet {
    kind: ModelKind,
    /// d→128 (no activation), 128→32 (ReLU); for the AE also 32→16→6 (ReLU each).
    trunk: Vec<Linear>,
    /// VAE/VSC: one 32→16 (ReLU) → 6 branch per head (μ, log σ², and the VSC's spike).
    heads: Vec<(Linear, Linear)>,
    /// 6→16→32→128 (ReLU each) → d (linear).
    decoder: Vec<Linear>,
}

impl CandleNet {
    fn new(kind: ModelKind, d: usize, vb: VarBuilder) -> candle_core::Result<Self> {
        let widths: &[usize] = match kind {
            ModelKind::Ae => &[d, 128, 32, 16, LATENT],
            _ => &[d, 128, 32],
        };
        let trunk = (0..widths.len() - 1)
            .map(|i| torch_linear(widths[i], widths[i + 1], vb.pp(format!("trunk{i}"))))
            .collect::<candle_core::Result<_>>()?;
        let heads = (0..kind.heads().len())
            .filter(|_| kind != ModelKind::Ae)
            .map(|h| {
                Ok((
                    torch_linear(32, 16, vb.pp(format!("branch{h}")))?,
                    torch_linear(16, LATENT, vb.pp(format!("head{h}")))?,
                ))
            })
            .collect::<candle_core::Result<_>>()?;
        let dec_widths = [LATENT, 16, 32, 128, d];
        let decoder = (0..dec_widths.len() - 1)
            .map(|i| torch_linear(dec_widths[i], dec_widths[i + 1], vb.pp(format!("dec{i}"))))
            .collect::<candle_core::Result<_>>()?;
        Ok(CandleNet {
            kind,
            trunk,
            heads,
            decoder,
        })
    }

    /// The batch's loss: per-cell sum of squared errors (+ β·KL), mean over the batch.
    fn loss(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let mut h = self.trunk[0].forward(x)?; // the first layer has no activation
        for layer in &self.trunk[1..] {
            h = layer.forward(&h)?.relu()?;
        }
        let heads = self
            .heads
            .iter()
            .map(|(branch, head)| head.forward(&branch.forward(&h)?.relu()?))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let (z, kl) = match self.kind {
            ModelKind::Ae => (h, None),
            ModelKind::Vae => {
                let (mu, logvar) = (&heads[0], &heads[1]);
                let z = (mu + (mu.randn_like(0.0, 1.0)? * (logvar * 0.5)?.exp()?)?)?;
                (z, Some(gaussian_kl(mu, logvar, None)?))
            }
            ModelKind::Vsc => {
                let (mu, logvar) = (&heads[0], &heads[1]);
                let log_spike = heads[2].neg()?.relu()?.neg()?; // min(0, ·)
                let spike = log_spike.exp()?;
                let eta = mu.rand_like(0.0, 1.0)?;
                let selection = sigmoid(&(((eta + &spike)? - 1.0)? * VSC_C)?)?;
                let slab = (mu + (mu.randn_like(0.0, 1.0)? * (logvar * 0.5)?.exp()?)?)?;
                let s = spike.clamp(1e-6, 1.0 - 1e-6)?;
                let one_minus = (s.neg()? + 1.0)?;
                let spike_kl = ((&one_minus * (&one_minus / (1.0 - VSC_ALPHA))?.log()?)?
                    + (&s * (&s / VSC_ALPHA)?.log()?)?)?
                .sum_all()?;
                let kl = (gaussian_kl(mu, logvar, Some(&s))? + spike_kl)?;
                ((selection * slab)?, Some(kl))
            }
        };
        let mut y = z;
        let last = self.decoder.len() - 1;
        for (i, layer) in self.decoder.iter().enumerate() {
            y = layer.forward(&y)?;
            if i < last {
                y = y.relu()?;
            }
        }
        let recon = (y - x)?.sqr()?.sum_all()?;
        let total = match kl {
            Some(kl) => (recon + (kl * BETA)?)?,
            None => recon,
        };
        total / x.dim(0)? as f64
    }
}

/// A `Linear` initialised as PyTorch's `nn.Linear` and cellvae's layers, `U(±1/√in)` for the
/// weight and the bias (candle's own `linear` draws Kaiming-normal weights, which start the
/// loss far higher).
fn torch_linear(n_in: usize, n_out: usize, vb: VarBuilder) -> candle_core::Result<Linear> {
    let bound = 1.0 / (n_in as f64).sqrt();
    let init = Init::Uniform {
        lo: -bound,
        up: bound,
    };
    let weight = vb.get_with_hints((n_out, n_in), "weight", init)?;
    let bias = vb.get_with_hints(n_out, "bias", init)?;
    Ok(Linear::new(weight, Some(bias)))
}

fn sigmoid(x: &Tensor) -> candle_core::Result<Tensor> {
    (x.neg()?.exp()? + 1.0)?.recip()
}

/// `−½ Σ w·(1 + log σ² − μ² − σ²)`, weighted by the spike probabilities for the VSC.
fn gaussian_kl(mu: &Tensor, logvar: &Tensor, w: Option<&Tensor>) -> candle_core::Result<Tensor> {
    let inner = (((logvar + 1.0)? - mu.sqr()?)? - logvar.exp()?)?;
    let inner = match w {
        Some(w) => (inner * w)?,
        None => inner,
    };
    inner.sum_all()? * -0.5
}

/// candle's epochs. (Its CPU noise generator cannot be seeded; `seed` fixes the batch order.)
fn candle_epochs(kind: ModelKind, x: &Tensor, epochs: usize, seed: u64) -> Run {
    let dev = Device::Cpu;
    let (n, d) = x.dims2().expect("2-D input");
    let vars = VarMap::new();
    let vb = VarBuilder::from_varmap(&vars, DType::F32, &dev);
    let net = CandleNet::new(kind, d, vb).expect("candle network");
    let params = candle_nn::ParamsAdamW {
        lr: 1e-3,
        weight_decay: 0.0,
        ..Default::default()
    };
    let mut adam = candle_nn::AdamW::new(vars.all_vars(), params).expect("adam");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut order: Vec<u32> = (0..n as u32).collect();
    let (mut seconds, mut last_loss) = (Vec::with_capacity(epochs), 0.0);
    for _ in 0..epochs {
        let start = Instant::now();
        let mut loss_sum = 0.0;
        order.shuffle(&mut rng);
        for chunk in order.chunks(BATCH) {
            let idx = Tensor::from_slice(chunk, chunk.len(), &dev).expect("index");
            let batch = x.index_select(&idx, 0).expect("batch");
            let loss = net.loss(&batch).expect("forward");
            adam.backward_step(&loss).expect("backward");
            // cellvae adds its losses up inside the epoch too
            loss_sum += f64::from(loss.to_scalar::<f32>().expect("loss")) * chunk.len() as f64;
        }
        seconds.push(start.elapsed().as_secs_f64());
        last_loss = loss_sum / n as f64;
    }
    Run {
        seconds: seconds.into_iter().skip(1).collect(),
        last_loss,
    }
}

fn main() {
    let args = parse_args();
    let x = pbmc3k();
    let x_dense = Tensor::from_vec(dense(&x), (x.n_rows, x.n_cols), &Device::Cpu).expect("input");
    println!(
        "PBMC3k {} cells × {} genes, batch {BATCH}, {} epochs × {} rounds, {} threads",
        x.n_rows,
        x.n_cols,
        args.epochs,
        args.rounds,
        rayon::current_num_threads()
    );
    println!("| model | cellvae s/epoch | candle s/epoch | candle / cellvae | loss/cell after the last epoch: cellvae, candle |");
    println!("|---|---|---|---|---|");
    for &kind in &args.models {
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        let mut losses = (0.0, 0.0);
        for round in 0..args.rounds {
            let seed = 1 + round as u64;
            let a = cellvae_epochs(kind, &x, args.epochs, seed);
            let b = candle_epochs(kind, &x_dense, args.epochs, seed);
            ours.push(median(a.seconds));
            theirs.push(median(b.seconds));
            losses = (a.last_loss, b.last_loss);
        }
        let (o, t) = (median(ours), median(theirs));
        println!(
            "| {} | {o:.3} | {t:.3} | {:.2}× | {:.0}, {:.0} |",
            kind.name(),
            t / o,
            losses.0,
            losses.1
        );
    }
}
