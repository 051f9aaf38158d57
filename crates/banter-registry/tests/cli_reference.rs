//! docs/cli.md is generated from the real `--help` text; this fails when it is stale.
//! Regenerate with `make docs` (UPDATE_DOCS=1 cargo test -p banter-registry --test cli_reference).
#![allow(clippy::unwrap_used)]

use banter_registry::cli::Cli;
use clap::CommandFactory;

fn render() -> String {
    let mut cmd = Cli::command().term_width(100);
    cmd.build();
    let mut out = String::from(
        "# `banter-registry` command line\n\n<!-- generated from the --help text by `make docs`; do not edit -->\n\n",
    );
    out.push_str("```text\n");
    out.push_str(&cmd.render_long_help().to_string());
    out.push_str("```\n");
    for sub in cmd.get_subcommands_mut() {
        if sub.get_name() == "help" {
            continue;
        }
        out.push_str(&format!("\n## `banter-registry {}`\n\n```text\n", sub.get_name()));
        out.push_str(&sub.render_long_help().to_string());
        out.push_str("```\n");
    }
    out.lines().map(str::trim_end).collect::<Vec<_>>().join("\n") + "\n"
}

#[test]
fn cli_reference_is_current() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/cli.md");
    let want = render();
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(path, &want).unwrap();
        return;
    }
    let have = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        have == want,
        "docs/cli.md is stale: run `make docs` and commit the result"
    );
}
