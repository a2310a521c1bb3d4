//! The packaged configuration, config/agent.toml, is valid as shipped and with every commented
//! example table switched on, so a documented example never teaches a key that is refused.

use super::parse;
use std::path::Path;

const PACKAGED: &str = include_str!("../../../config/agent.toml");

/// The packaged file with each commented `#[[collectors]]` / `#[s3]` table uncommented: one `#`
/// is taken off every line of the table, up to the first blank line or lone `#`. Comments
/// inside an example are written `## …` (or after the value) so that they stay comments.
/// Commented top-level settings (`#log_filter = …`) are switched on too.
fn with_examples_on(text: &str) -> (String, usize) {
    let mut out = String::new();
    let mut in_example = false;
    let mut examples = 0;
    for line in text.lines() {
        if line == "#[[collectors]]" || line == "#[s3]" {
            in_example = true;
            examples += 1;
        } else if line.trim().is_empty() || line == "#" || !line.starts_with('#') {
            in_example = false;
        }
        let setting = |rest: &str| {
            let key = rest.split(" =").next().unwrap_or_default();
            rest.contains(" =") && super::KNOWN_TOP_LEVEL.contains(&key)
        };
        match line.strip_prefix('#') {
            Some(rest) if in_example || setting(rest) => out.push_str(rest),
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    (out, examples)
}

#[test]
fn the_packaged_configuration_is_valid() {
    if let Err(errors) = parse(Path::new("config/agent.toml"), PACKAGED, None) {
        panic!("config/agent.toml as shipped:\n{errors}");
    }
}

#[test]
fn every_commented_example_is_valid() {
    let (text, examples) = with_examples_on(PACKAGED);
    assert!(examples >= 2, "the examples were found ({examples})");
    if let Err(errors) = parse(Path::new("config/agent.toml (examples on)"), &text, None) {
        panic!("config/agent.toml with its examples on:\n{errors}\n\n{text}");
    }
}
