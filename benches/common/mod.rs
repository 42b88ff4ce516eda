//! Shared by the benchmark drivers.

/// Mean and its standard error.
pub struct Mean {
    pub mean: f64,
    pub stderr: f64,
}

impl Mean {
    pub fn of(values: impl Iterator<Item = f64>) -> Mean {
        let v: Vec<f64> = values.collect();
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
        Mean { mean, stderr: (var / n).sqrt() }
    }
}
