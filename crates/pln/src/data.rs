//! PLN data: counts Y (n×p), offsets O = log(raw offsets) (n×p) and
//! covariates X (n×d). Loaded from the oaks CSV files shipped in `data/oaks`
//! (stacked `repeat` times along the rows, as the tutorial does), or drawn
//! from the model itself by [`simulate`].

use arrayjit::{Array, DType};
use std::fmt;
use std::path::{Path, PathBuf};

/// A data set in a given dtype.
#[derive(Clone, Debug)]
pub struct Dataset {
    pub y: Array,
    pub o: Array,
    pub x: Array,
    pub n: usize,
    pub p: usize,
    pub dtype: DType,
}

/// Why a data file could not be read: which file, which line, what is wrong.
#[derive(Debug)]
pub enum DataError {
    Io { path: PathBuf, source: std::io::Error },
    Malformed { path: PathBuf, line: usize, message: String },
    Shape { message: String },
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataError::Io { path, source } => write!(f, "cannot read {}: {source}", path.display()),
            DataError::Malformed { path, line, message } => write!(f, "{}:{line}: {message}", path.display()),
            DataError::Shape { message } => f.write_str(message),
        }
    }
}

impl std::error::Error for DataError {}

/// The directory of the oaks data shipped with the repository: where the
/// build found it, or (for a binary carried to another machine) `data/oaks`
/// under the current directory.
pub fn oaks_dir() -> PathBuf {
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/oaks");
    if built.is_dir() {
        built
    } else {
        PathBuf::from("data/oaks")
    }
}

/// A numeric CSV table with a header row: `(rows, columns, values row-major)`.
pub fn read_csv(path: &Path) -> Result<(usize, usize, Vec<f64>), DataError> {
    let text = std::fs::read_to_string(path).map_err(|source| DataError::Io { path: path.into(), source })?;
    let mut lines = text.lines().enumerate();
    let cols = match lines.next() {
        Some((_, header)) if !header.trim().is_empty() => header.split(',').count(),
        _ => return Err(DataError::Malformed { path: path.into(), line: 1, message: "no header row".into() }),
    };
    let mut values = Vec::new();
    let mut rows = 0;
    for (i, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').collect();
        if fields.len() != cols {
            return Err(DataError::Malformed {
                path: path.into(),
                line: i + 1,
                message: format!("{} fields, but the header has {cols}", fields.len()),
            });
        }
        for (j, f) in fields.iter().enumerate() {
            let v: f64 = f.trim().parse().map_err(|_| DataError::Malformed {
                path: path.into(),
                line: i + 1,
                message: format!("field {} is `{}`, not a number", j + 1, f.trim()),
            })?;
            values.push(v);
        }
        rows += 1;
    }
    Ok((rows, cols, values))
}

fn array(values: Vec<f64>, shape: [usize; 2], dtype: DType) -> Array {
    match dtype {
        DType::F32 => Array::from_vec(values.into_iter().map(|v| v as f32).collect(), shape),
        _ => Array::from_vec(values, shape),
    }
}

/// Stacks the rows of a row-major `rows × cols` table `k` times (numpy's `repeat` along axis 0:
/// each row repeated `k` times in place).
fn repeat_rows(values: &[f64], cols: usize, k: usize) -> Vec<f64> {
    values.chunks(cols).flat_map(|row| std::iter::repeat_n(row, k).flatten().copied()).collect()
}

impl Dataset {
    /// The oaks counts and offsets from `dir`, each row repeated `repeat`
    /// times, with X a column of ones.
    pub fn load(dir: &Path, repeat: usize, dtype: DType) -> Result<Dataset, DataError> {
        let (n0, p, counts) = read_csv(&dir.join("counts.csv"))?;
        let (n1, p1, offsets) = read_csv(&dir.join("offsets.csv"))?;
        if (n0, p) != (n1, p1) {
            return Err(DataError::Shape {
                message: format!("counts.csv is {n0}×{p} but offsets.csv is {n1}×{p1}; they must have the same shape"),
            });
        }
        if let Some((i, v)) = offsets.iter().enumerate().find(|(_, v)| **v <= 0.0) {
            return Err(DataError::Malformed {
                path: dir.join("offsets.csv"),
                line: i / p + 2,
                message: format!("offset {v} is not positive (offsets are logged)"),
            });
        }
        if repeat == 0 {
            return Err(DataError::Shape { message: "the repeat factor must be at least 1".into() });
        }
        let n = n0 * repeat;
        let y = repeat_rows(&counts, p, repeat);
        let o: Vec<f64> = repeat_rows(&offsets, p, repeat).iter().map(|v| v.ln()).collect();
        Ok(Dataset {
            y: array(y, [n, p], dtype),
            o: array(o, [n, p], dtype),
            x: array(vec![1.0; n], [n, 1], dtype),
            n,
            p,
            dtype,
        })
    }

    /// The shipped oaks data.
    pub fn oaks(repeat: usize, dtype: DType) -> Result<Dataset, DataError> {
        Dataset::load(&oaks_dir(), repeat, dtype)
    }
}

/// A small deterministic generator (SplitMix64) for simulations.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1).
    pub fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }

    /// Poisson with mean `lambda` (inversion for small means, a normal
    /// approximation rounded to the nearest count above 1000).
    pub fn poisson(&mut self, lambda: f64) -> f64 {
        if lambda > 1000.0 {
            return (lambda + lambda.sqrt() * self.normal()).round().max(0.0);
        }
        if lambda > 30.0 {
            // Sum of Poissons of smaller means.
            let half = lambda / 2.0;
            return self.poisson(half) + self.poisson(lambda - half);
        }
        let limit = (-lambda).exp();
        let mut k = 0.0;
        let mut prod = self.uniform();
        while prod > limit {
            k += 1.0;
            prod *= self.uniform();
        }
        k
    }
}

/// Draws `n` samples of the PLN model with `p` taxa: Zᵢ ~ N(XᵢB, Σ),
/// Yᵢⱼ ~ Poisson(exp(Oᵢⱼ + Zᵢⱼ)), with X a column of ones, O = 0, B given
/// (1×p) and Σ given (p×p, symmetric positive definite, row-major).
pub fn simulate(n: usize, b: &[f64], sigma: &[f64], seed: u64, dtype: DType) -> Result<Dataset, DataError> {
    let p = b.len();
    if sigma.len() != p * p {
        return Err(DataError::Shape { message: format!("Σ has {} entries but B has {p} columns", sigma.len()) });
    }
    // Cholesky factor L of Σ, by hand (p is small).
    let mut l = vec![0.0; p * p];
    for i in 0..p {
        for j in 0..=i {
            let s: f64 = (0..j).map(|k| l[i * p + k] * l[j * p + k]).sum();
            if i == j {
                let d = sigma[i * p + i] - s;
                if d <= 0.0 {
                    return Err(DataError::Shape { message: "Σ is not positive definite".into() });
                }
                l[i * p + i] = d.sqrt();
            } else {
                l[i * p + j] = (sigma[i * p + j] - s) / l[j * p + j];
            }
        }
    }
    let mut rng = Rng::new(seed);
    let mut y = Vec::with_capacity(n * p);
    for _ in 0..n {
        let e: Vec<f64> = (0..p).map(|_| rng.normal()).collect();
        for j in 0..p {
            let z = b[j] + (0..=j).map(|k| l[j * p + k] * e[k]).sum::<f64>();
            y.push(rng.poisson(z.exp()));
        }
    }
    Ok(Dataset {
        y: array(y, [n, p], dtype),
        o: array(vec![0.0; n * p], [n, p], dtype),
        x: array(vec![1.0; n], [n, 1], dtype),
        n,
        p,
        dtype,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oaks_loads_with_its_shape_and_repeats_rows_in_place() {
        let d = Dataset::oaks(1, DType::F64).unwrap();
        assert_eq!((d.n, d.p), (116, 114));
        let d3 = Dataset::oaks(3, DType::F64).unwrap();
        assert_eq!(d3.y.shape(), [348, 114]);
        let (y, y3) = (d.y.to_vec::<f64>(), d3.y.to_vec::<f64>());
        // Row 1 of the original is rows 3, 4 and 5 of the repeated set.
        assert_eq!(&y3[3 * 114..4 * 114], &y[114..228]);
        assert_eq!(&y3[5 * 114..6 * 114], &y[114..228]);
    }

    #[test]
    fn malformed_files_name_the_file_and_line() {
        let dir = std::env::temp_dir().join(format!("pln-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("counts.csv"), "a,b\n1,2\n3,x\n").unwrap();
        std::fs::write(dir.join("offsets.csv"), "a,b\n1,2\n3,4\n").unwrap();
        let e = Dataset::load(&dir, 1, DType::F32).unwrap_err().to_string();
        assert!(e.contains("counts.csv:3") && e.contains("`x`"), "{e}");
        let e = Dataset::load(&dir.join("missing"), 1, DType::F32).unwrap_err().to_string();
        assert!(e.contains("cannot read") && e.contains("counts.csv"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn poisson_draws_have_their_mean() {
        let mut rng = Rng::new(3);
        for lambda in [0.5, 7.0, 80.0, 5000.0] {
            let m: f64 = (0..4000).map(|_| rng.poisson(lambda)).sum::<f64>() / 4000.0;
            assert!((m - lambda).abs() < 4.0 * (lambda / 4000.0f64).sqrt() + 0.01, "{lambda}: {m}");
        }
    }
}
