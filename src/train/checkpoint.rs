//! Checkpoints: safetensors files that PyTorch can load.
//!
//! Tensors carry PyTorch `state_dict` names (`encoder.0.weight`, `heads.mu.out.bias`, …) and
//! shapes (weights `(out, in)`), in f32. The metadata holds the model, preset, full
//! configuration, gene IDs and names, seed, epochs and the cellvae version, and nothing that
//! changes between identical runs (no paths, no times). The header is written by hand with
//! its keys sorted, so the same run always writes the same bytes; reading goes through the
//! `safetensors` crate, which validates the layout.

use crate::error::{Error, Result};
use crate::io::atomic::write_bytes;
use crate::models::{ModelConfig, Network};
use crate::preprocess::Scaling;
use safetensors::{Dtype, SafeTensors};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::path::Path;

/// Marks a file as a cellvae checkpoint.
const FORMAT: &str = "cellvae-checkpoint-1";

/// What a checkpoint records besides the weights.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckpointMeta {
    pub config: ModelConfig,
    pub gene_ids: Vec<String>,
    pub gene_names: Vec<String>,
    /// Whether `gene_ids` are real identifiers (otherwise they repeat the names).
    pub has_gene_ids: bool,
    pub seed: u64,
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    /// The per-gene scaling the model was trained behind (`--scale`), applied by `embed`.
    pub scaling: Option<Scaling>,
    /// The batches a conditional model was trained on, in the order of its one-hot code.
    pub batch_names: Option<Vec<String>>,
}

/// The checkpoint file's bytes.
pub fn to_bytes(net: &Network<f32>, meta: &CheckpointMeta) -> Vec<u8> {
    let mut metadata = Map::new();
    let s = |v: Value| v.to_string();
    metadata.insert("format".into(), Value::String(FORMAT.into()));
    metadata.insert(
        "cellvae_version".into(),
        Value::String(env!("CARGO_PKG_VERSION").into()),
    );
    metadata.insert(
        "model".into(),
        Value::String(meta.config.kind.name().into()),
    );
    metadata.insert(
        "preset".into(),
        Value::String(meta.config.preset.name().into()),
    );
    metadata.insert("config".into(), Value::String(s(meta.config.to_json())));
    metadata.insert("gene_ids".into(), Value::String(s(json!(meta.gene_ids))));
    metadata.insert(
        "gene_names".into(),
        Value::String(s(json!(meta.gene_names))),
    );
    metadata.insert(
        "has_gene_ids".into(),
        Value::String(meta.has_gene_ids.to_string()),
    );
    metadata.insert("seed".into(), Value::String(meta.seed.to_string()));
    metadata.insert("epochs".into(), Value::String(meta.epochs.to_string()));
    metadata.insert(
        "batch_size".into(),
        Value::String(meta.batch_size.to_string()),
    );
    metadata.insert("lr".into(), Value::String(meta.lr.to_string()));
    if let Some(sc) = &meta.scaling {
        let v = json!({"mean": sc.mean, "sd": sc.sd, "clip": sc.clip});
        metadata.insert("scaling".into(), Value::String(s(v)));
    }
    if let Some(names) = &meta.batch_names {
        metadata.insert("batch_names".into(), Value::String(s(json!(names))));
    }

    safetensors_bytes(net.state_dict(), metadata)
}

/// A safetensors file of f32 tensors with string metadata. The header's keys are sorted
/// (serde_json's map is ordered), tensors are laid out in name order, and the header is
/// padded to 8 bytes: the same input always gives the same bytes.
pub fn safetensors_bytes(
    mut tensors: Vec<(String, Vec<usize>, Vec<f32>)>,
    metadata: Map<String, Value>,
) -> Vec<u8> {
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let mut header = Map::new();
    header.insert("__metadata__".into(), Value::Object(metadata));
    let mut offset = 0usize;
    for (name, shape, values) in &tensors {
        let len = values.len() * 4;
        header.insert(
            name.clone(),
            json!({"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + len]}),
        );
        offset += len;
    }
    let mut header = Value::Object(header).to_string().into_bytes();
    while !header.len().is_multiple_of(8) {
        header.push(b' ');
    }
    let mut bytes = Vec::with_capacity(8 + header.len() + offset);
    bytes.extend_from_slice(&(header.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&header);
    for (_, _, values) in &tensors {
        for v in values {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
    }
    bytes
}

/// Saves a checkpoint atomically.
pub fn save(path: &Path, net: &Network<f32>, meta: &CheckpointMeta) -> Result<()> {
    write_bytes(path, &to_bytes(net, meta))
}

/// Loads a checkpoint, checking that it is a complete cellvae checkpoint.
pub fn load(path: &Path) -> Result<(Network<f32>, CheckpointMeta)> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    from_bytes(&bytes).map_err(|msg| Error::parse(path, None, msg))
}

/// Parses checkpoint bytes; the error says what is wrong.
pub fn from_bytes(bytes: &[u8]) -> std::result::Result<(Network<f32>, CheckpointMeta), String> {
    let st = SafeTensors::deserialize(bytes)
        .map_err(|e| format!("not a valid safetensors file ({e}); truncated?"))?;
    let (_, header) = SafeTensors::read_metadata(bytes)
        .map_err(|e| format!("not a valid safetensors file ({e})"))?;
    let md: HashMap<String, String> = header.metadata().clone().unwrap_or_default();
    let get = |k: &str| {
        md.get(k)
            .ok_or_else(|| format!("not a cellvae checkpoint: metadata '{k}' is missing"))
    };
    if get("format")? != FORMAT {
        return Err(format!(
            "not a cellvae checkpoint (format '{}')",
            get("format")?
        ));
    }
    let parse_json = |k: &str| -> std::result::Result<Value, String> {
        serde_json::from_str(get(k)?).map_err(|e| format!("metadata '{k}' is not valid JSON: {e}"))
    };
    let config =
        ModelConfig::from_json(&parse_json("config")?).ok_or("metadata 'config' is incomplete")?;
    let strings = |k: &str| -> std::result::Result<Vec<String>, String> {
        serde_json::from_value(parse_json(k)?).map_err(|e| format!("metadata '{k}': {e}"))
    };
    let number = |k: &str| -> std::result::Result<f64, String> {
        get(k)?
            .parse()
            .map_err(|_| format!("metadata '{k}' is not a number"))
    };
    let meta = CheckpointMeta {
        gene_ids: strings("gene_ids")?,
        gene_names: strings("gene_names")?,
        has_gene_ids: get("has_gene_ids")? == "true",
        seed: get("seed")?
            .parse()
            .map_err(|_| "metadata 'seed' is not an integer")?,
        epochs: number("epochs")? as usize,
        batch_size: number("batch_size")? as usize,
        lr: number("lr")?,
        scaling: md
            .get("scaling")
            .map(|_| scaling(&parse_json("scaling")?))
            .transpose()?,
        batch_names: md
            .get("batch_names")
            .map(|_| strings("batch_names"))
            .transpose()?,
        config,
    };
    if meta.config.n_batches > 0
        && meta.batch_names.as_ref().map(Vec::len) != Some(meta.config.n_batches)
    {
        return Err(format!(
            "a model conditioned on {} batches needs their names in metadata 'batch_names'",
            meta.config.n_batches
        ));
    }
    if meta.gene_ids.len() != meta.gene_names.len() || meta.gene_ids.is_empty() {
        return Err("metadata 'gene_ids' and 'gene_names' disagree".into());
    }
    if let Some(sc) = &meta.scaling {
        if sc.mean.len() != meta.gene_ids.len() {
            return Err(format!(
                "metadata 'scaling' covers {} genes, the model {}",
                sc.mean.len(),
                meta.gene_ids.len()
            ));
        }
    }
    meta.config
        .validate()
        .map_err(|e| format!("metadata 'config': {e}"))?;
    let stored: usize = st
        .tensors()
        .iter()
        .map(|(_, v)| v.shape().iter().product::<usize>())
        .sum();
    let needed = meta.config.param_count(meta.gene_ids.len());
    if needed != Some(stored) {
        return Err(format!(
            "its tensors hold {stored} values, but its configuration on {} genes needs {}",
            meta.gene_ids.len(),
            needed.map_or("an impossible number".into(), |n| n.to_string())
        ));
    }
    let mut net =
        Network::new(meta.config.clone(), meta.gene_ids.len(), 0).map_err(|e| e.to_string())?;
    let mut tensors = HashMap::new();
    for (name, view) in st.tensors() {
        if view.dtype() != Dtype::F32 {
            return Err(format!(
                "tensor '{name}' is {:?}, expected F32",
                view.dtype()
            ));
        }
        let values: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        if values.iter().any(|v| !v.is_finite()) {
            return Err(format!("tensor '{name}' holds non-finite values"));
        }
        tensors.insert(name, (view.shape().to_vec(), values));
    }
    net.load_state_dict(&tensors).map_err(|e| e.to_string())?;
    if let Some(s) = &meta.scaling {
        // `embed` scales new cells with `Scaling::apply`, which stores their change from `c`.
        net.set_input_shift(&s.zero_scores());
    }
    Ok((net, meta))
}

/// The `scaling` metadata: `{"mean": [...], "sd": [...], "clip": c}`.
fn scaling(v: &Value) -> std::result::Result<Scaling, String> {
    let floats = |k: &str| -> std::result::Result<Vec<f32>, String> {
        serde_json::from_value(v[k].clone()).map_err(|e| format!("metadata 'scaling.{k}': {e}"))
    };
    let s = Scaling {
        mean: floats("mean")?,
        sd: floats("sd")?,
        clip: v["clip"]
            .as_f64()
            .ok_or("metadata 'scaling.clip' is not a number")? as f32,
    };
    let ok = s.mean.len() == s.sd.len()
        && s.mean.iter().all(|m| m.is_finite())
        && s.sd.iter().all(|d| d.is_finite() && *d > 0.0)
        && s.clip > 0.0;
    if !ok {
        return Err("metadata 'scaling' needs finite means, positive sds of equal length".into());
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{ModelKind, Preset};

    fn small() -> (Network<f32>, CheckpointMeta) {
        let mut cfg = ModelConfig::preset(ModelKind::Vsc, Preset::Paper);
        cfg.trunk = vec![8, 4];
        let net = Network::new(cfg.clone(), 5, 1).unwrap();
        let meta = CheckpointMeta {
            config: cfg,
            gene_ids: (0..5).map(|i| format!("ENSG{i}")).collect(),
            gene_names: (0..5).map(|i| format!("G{i}")).collect(),
            has_gene_ids: true,
            seed: 1,
            epochs: 3,
            batch_size: 256,
            lr: 1e-3,
            scaling: Some(Scaling {
                mean: vec![0.1, 0.25, 1.0 / 3.0, 7.5, 0.0],
                sd: vec![1.0, 0.3, 2.0, 1e-3, 1.0],
                clip: 10.0,
            }),
            batch_names: None,
        };
        (net, meta)
    }

    #[test]
    fn round_trip_is_exact_and_bytes_are_stable() {
        let (net, meta) = small();
        let bytes = to_bytes(&net, &meta);
        assert_eq!(bytes, to_bytes(&net, &meta));
        let (back, meta2) = from_bytes(&bytes).unwrap();
        assert_eq!(meta, meta2, "the scaling's f32 values survive JSON exactly");
        assert_eq!(back.state_dict(), net.state_dict());
    }

    #[test]
    fn truncated_or_foreign_files_are_rejected() {
        let (net, meta) = small();
        let bytes = to_bytes(&net, &meta);
        for cut in [0, 7, 20, bytes.len() / 2, bytes.len() - 1] {
            assert!(from_bytes(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut other = bytes.clone();
        let pos = other
            .windows(FORMAT.len())
            .position(|w| w == FORMAT.as_bytes())
            .unwrap();
        other[pos] = b'X';
        assert!(from_bytes(&other)
            .unwrap_err()
            .contains("not a cellvae checkpoint"));
    }
}
