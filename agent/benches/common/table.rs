//! The one results table every benchmark feeds.
//!
//! Each figure is a [`Row`]: what was measured, our result, the reference measured in the same
//! run, the ratio between them, the target and whether it was met. [`record`] prints
//! the row and, when `BENCH_TABLE` names a file (as `bench/run.sh` does), appends it there as
//! one tab-separated line, so the script can print all benchmarks' rows as one table at the end.

use std::io::Write;

/// One line of the results table.
pub struct Row {
    /// What was measured, e.g. "durable append, batch 16".
    pub benchmark: String,
    /// Our figure with its unit, e.g. "2 310 entries/s".
    pub ours: String,
    /// The reference's figure, measured in the same run, with what it is.
    pub reference: String,
    /// Ours over the reference, with what the ratio compares, e.g. "0.61 of its rate".
    pub ratio: String,
    /// The target, e.g. "≥ 0.50 of the bare rate".
    pub target: String,
    /// Whether the target was met; `None` for a figure that has no target.
    pub met: Option<bool>,
}

/// Prints `row` and appends it to the `BENCH_TABLE` file when that is set.
pub fn record(row: Row) {
    let verdict = match row.met {
        Some(true) => "met",
        Some(false) => "MISSED",
        None => "-",
    };
    let fields = [
        row.benchmark.as_str(),
        &row.ours,
        &row.reference,
        &row.ratio,
        &row.target,
        verdict,
    ];
    println!("RESULT {}", fields.join(" | "));
    if let Some(path) = std::env::var_os("BENCH_TABLE") {
        let clean: Vec<String> = fields
            .iter()
            .map(|f| f.replace(['\t', '\n'], " "))
            .collect();
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("open BENCH_TABLE {path:?}: {e}"));
        writeln!(file, "{}", clean.join("\t"))
            .unwrap_or_else(|e| panic!("write BENCH_TABLE {path:?}: {e}"));
    }
}
