//! AnnData's on-disk elements (`encoding-version` 0.1.0 / 0.2.0) as scanpy's `read_h5ad`
//! reads them: the encoding attributes, and `obs` / `var` dataframes with numeric,
//! boolean, categorical and string columns. [`super::h5ad_stream`] writes whole files with
//! them.

use super::labels::natural_order;
use hdf5_pure::{make_i8_type, AttrValue, EnumTypeBuilder, GroupBuilder};

/// A dataframe column.
pub enum Column {
    Numeric(Vec<f64>),
    /// Booleans, stored as h5py stores numpy's `bool` (an int8 enum FALSE = 0, TRUE = 1).
    Bool(Vec<bool>),
    /// Strings, e.g. gene IDs.
    Strings(Vec<String>),
    /// A categorical: per row a category (`None`: missing), categories in first-seen order
    /// unless they are all integers, then in numeric order.
    Categorical(Vec<Option<String>>),
}

pub(super) fn encoding(ty: &str, version: &str) -> [(&'static str, AttrValue); 2] {
    [
        ("encoding-type", AttrValue::VarLenString(ty.into())),
        ("encoding-version", AttrValue::VarLenString(version.into())),
    ]
}

pub(super) fn tag_group(g: &mut GroupBuilder, ty: &str, version: &str) {
    for (k, v) in encoding(ty, version) {
        g.set_attr(k, v);
    }
}

fn strings(g: &mut GroupBuilder, name: &str, values: &[String]) {
    let refs: Vec<&str> = values.iter().map(String::as_str).collect();
    let d = g.create_dataset(name).with_vlen_strings(&refs);
    for (k, v) in encoding("string-array", "0.2.0") {
        d.set_attr(k, v);
    }
}

/// Fills `g` as anndata's dataframe element.
pub(super) fn fill_dataframe(g: &mut GroupBuilder, index: &[String], columns: &[(String, Column)]) {
    tag_group(g, "dataframe", "0.2.0");
    g.set_attr("_index", AttrValue::VarLenString("_index".into()));
    let order: Vec<String> = columns.iter().map(|(n, _)| n.clone()).collect();
    g.set_attr("column-order", AttrValue::VarLenStringArray(order));
    strings(g, "_index", index);
    for (col, values) in columns {
        match values {
            Column::Numeric(v) => {
                let d = g.create_dataset(col).with_f64_data(v);
                for (k, v) in encoding("array", "0.2.0") {
                    d.set_attr(k, v);
                }
            }
            Column::Strings(v) => strings(g, col, v),
            Column::Bool(v) => {
                let dt = EnumTypeBuilder::with_base(make_i8_type())
                    .value("FALSE", 0)
                    .value("TRUE", 1)
                    .build()
                    .expect("0 and 1 fit an int8");
                let bytes: Vec<u8> = v.iter().map(|&b| b as u8).collect();
                let d = g.create_dataset(col).with_enum_u8_data(dt, &bytes);
                for (k, v) in encoding("array", "0.2.0") {
                    d.set_attr(k, v);
                }
            }
            Column::Categorical(v) => {
                let mut cats: Vec<String> = Vec::new();
                for s in v.iter().flatten() {
                    if !cats.contains(s) {
                        cats.push(s.clone());
                    }
                }
                if cats.iter().all(|c| c.parse::<i64>().is_ok()) {
                    natural_order(&mut cats);
                }
                let codes: Vec<i32> = v
                    .iter()
                    .map(|s| {
                        s.as_ref().map_or(-1, |s| {
                            cats.iter().position(|c| c == s).expect("listed") as i32
                        })
                    })
                    .collect();
                let mut c = g.create_group(col);
                tag_group(&mut c, "categorical", "0.2.0");
                c.set_attr("ordered", AttrValue::U8(0));
                strings(&mut c, "categories", &cats);
                let d = c.create_dataset("codes").with_i32_data(&codes);
                for (k, v) in encoding("array", "0.2.0") {
                    d.set_attr(k, v);
                }
                g.add_group(c.finish());
            }
        }
    }
}
