"""Writes the malformed HDF5 inputs of the bad-input corpus (tests/bad_inputs/cases.tsv).

    python tests/bad_inputs/h5/make_cases.py       # needs h5py and numpy

Each is a small copy of a valid layout with one thing wrong; cellvae must answer each with
one error line naming the file and the HDF5 object, exit code 1, and no output.
"""
import os

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
STR = h5py.string_dtype()


def h5ad(name, data=None, indices=None, indptr=None, shape=(3, 2), obs=True, var=True,
         encoding="csr_matrix"):
    with h5py.File(os.path.join(HERE, name), "w") as f:
        x = f.create_group("X")
        x.attrs["encoding-type"] = encoding
        x.attrs["encoding-version"] = "0.1.0"
        x.attrs["shape"] = np.array(shape)
        x["data"] = np.array([1.0, 2.0, 3.0], dtype=np.float32) if data is None else data
        x["indices"] = np.array([0, 1, 1], dtype=np.int32) if indices is None else indices
        x["indptr"] = np.array([0, 1, 2, 3], dtype=np.int32) if indptr is None else indptr
        for group, names, present in [("obs", ["c1", "c2", "c3"], obs),
                                      ("var", ["g1", "g2"], var)]:
            if present:
                g = f.create_group(group)
                g.attrs["_index"] = "_index"
                g.attrs["encoding-type"] = "dataframe"
                g["_index"] = np.array(names, dtype=object).astype(STR)


def main():
    h5ad("valid.h5ad")
    h5ad("missing_obs.h5ad", obs=False)
    h5ad("shape_mismatch.h5ad", shape=(4, 2))
    h5ad("indptr_short.h5ad", indptr=np.array([0, 1, 3], dtype=np.int32))
    h5ad("index_out_of_range.h5ad", indices=np.array([0, 1, 7], dtype=np.int32))
    h5ad("negative_value.h5ad", data=np.array([1.0, -2.0, 3.0], dtype=np.float32))
    h5ad("nan_value.h5ad", data=np.array([1.0, np.nan, 3.0], dtype=np.float32))
    h5ad("string_data.h5ad", data=np.array(["a", "b", "c"], dtype="S1"))
    h5ad("unknown_encoding.h5ad", encoding="coo_matrix")
    with open(os.path.join(HERE, "valid.h5ad"), "rb") as f:
        data = f.read()
    with open(os.path.join(HERE, "truncated.h5ad"), "wb") as f:
        f.write(data[: len(data) // 2])
    with open(os.path.join(HERE, "not_hdf5.h5"), "w") as f:
        f.write("barcode,g1\nc1,1\n")
    with h5py.File(os.path.join(HERE, "tenx_no_barcodes.h5"), "w") as f:
        m = f.create_group("matrix")
        m["data"], m["indices"], m["indptr"] = [1], [0], [0, 1]
        m["shape"] = np.array([1, 1], dtype=np.int32)
        m.create_group("features")["id"] = np.array(["G1"], dtype="S")
        m["features"]["name"] = np.array(["g1"], dtype="S")
    with h5py.File(os.path.join(HERE, "tenx_shape_mismatch.h5"), "w") as f:
        m = f.create_group("matrix")
        m["data"], m["indices"], m["indptr"] = [1], [0], [0, 1]
        m["shape"] = np.array([2, 1], dtype=np.int32)
        m["barcodes"] = np.array(["c1"], dtype="S")
        m.create_group("features")["id"] = np.array(["G1"], dtype="S")
        m["features"]["name"] = np.array(["g1"], dtype="S")
    print(sorted(os.listdir(HERE)))


if __name__ == "__main__":
    main()
