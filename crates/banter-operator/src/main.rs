//! `banter-operator` binary: `run`, `crd`, `render`.

use std::io::Read as _;

use anyhow::Context as _;
use banter_operator::cli::{Cli, Command};
use banter_operator::{Settings, controller, crd, render};
use clap::Parser as _;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Crd => {
            print!("{}", crd::crd_yaml().context("serializing the CRD")?);
            Ok(())
        }
        Command::Render {
            file,
            registry_image,
            redis_image,
        } => {
            let text = if file.as_os_str() == "-" {
                let mut s = String::new();
                std::io::stdin()
                    .read_to_string(&mut s)
                    .context("reading standard input")?;
                s
            } else {
                std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?
            };
            let settings = Settings {
                registry_image,
                redis_image,
            };
            print!("{}", render::render(&text, &settings)?);
            Ok(())
        }
        Command::Run(args) => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the tokio runtime")?;
            runtime.block_on(controller::run(args))
        }
    }
}
