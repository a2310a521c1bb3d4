//! Handling bundle directories in tests as a forger would: listing, copying, and resealing
//! (the manifest's file list and SHA256SUMS made to match edited files again, so that only
//! the deeper checks can notice an edit).

use sha2::{Digest, Sha256};
use std::path::Path;

/// Every file under `dir`, as sorted '/'-separated paths relative to it.
pub fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d).expect("read_dir") {
            let p = e.expect("dir entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).expect("under dir");
                out.push(rel.to_str().expect("UTF-8 path").to_owned());
            }
        }
    }
    out.sort();
    out
}

pub fn copy_dir(from: &Path, to: &Path) {
    for rel in files_under(from) {
        let target = to.join(&rel);
        std::fs::create_dir_all(target.parent().expect("parent")).expect("mkdir");
        std::fs::copy(from.join(&rel), &target).expect("copy");
    }
}

fn sha256_hex(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).expect("read")))
}

/// Recompute the manifest's file list and SHA256SUMS after an edit.
pub fn reseal(bundle: &Path) {
    let manifest_path = bundle.join("manifest.json");
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest_path).expect("read manifest"))
            .expect("manifest json");
    let files: Vec<serde_json::Value> = files_under(bundle)
        .into_iter()
        .filter(|rel| rel != "manifest.json" && rel != "SHA256SUMS")
        .map(|rel| {
            let p = bundle.join(&rel);
            let size = p.metadata().expect("stat").len();
            serde_json::json!({"path": rel, "sha256": sha256_hex(&p), "size": size})
        })
        .collect();
    manifest["files"] = serde_json::Value::Array(files);
    let bytes = collectors::canonical::to_vec(&manifest).expect("canonical json");
    std::fs::write(&manifest_path, bytes).expect("write manifest");
    let sums: String = files_under(bundle)
        .into_iter()
        .filter(|rel| rel != "SHA256SUMS")
        .map(|rel| format!("{}  {rel}\n", sha256_hex(&bundle.join(&rel))))
        .collect();
    std::fs::write(bundle.join("SHA256SUMS"), sums).expect("write sums");
}
