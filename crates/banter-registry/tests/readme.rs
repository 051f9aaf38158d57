//! The README's "Try it" walkthrough, taken from README.md itself and run
//! as written, so the two cannot drift. Three things differ from a
//! developer's terminal, all to keep the test hermetic: the address is a
//! free port instead of 127.0.0.1:8080, the data directory is a fresh
//! temporary one instead of ./data, and `make run` skips its build step
//! (`CARGO=true`: the binary is the one this test suite was built with).
#![allow(clippy::unwrap_used)]

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The first `sh` code block under `## Try it`.
fn walkthrough(readme: &str) -> String {
    let section = readme
        .split("\n## Try it")
        .nth(1)
        .expect("README has a `## Try it` section");
    let section = section.split("\n## ").next().unwrap_or(section);
    let start = section.find("```sh\n").expect("a sh block under Try it") + "```sh\n".len();
    let len = section[start..].find("```").expect("the block ends");
    section[start..start + len].to_owned()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn kill_group(pgid: u32) {
    let _ = nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(pgid as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
}

#[test]
fn the_readme_walkthrough_works_as_written() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let block = walkthrough(&readme);
    assert!(
        block.contains("make run &"),
        "the walkthrough starts the registry: {block}"
    );
    for needed in ["make", "curl", "bash"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {needed}")])
            .output()
            .unwrap()
            .status
            .success();
        assert!(found, "{needed} is needed by the README walkthrough");
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let port = free_port();
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_banter-registry"));
    let target = bin.parent().and_then(Path::parent).unwrap().to_owned();
    let script = block
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{port}"))
        .replace("data/publish-token", &format!("{}/publish-token", data.display()))
        .replace("target/debug/", &format!("{}/debug/", target.display()));

    let mut child = Command::new("bash")
        .args(["-e", "-c", &script])
        .current_dir(root())
        .env("CARGO", "true")
        .env("CARGO_TARGET_DIR", &target)
        .env("RUN_LISTEN", format!("127.0.0.1:{port}"))
        .env("RUN_DATA", &data)
        .env("BANTER_REGISTRY_URL", format!("http://127.0.0.1:{port}"))
        .env_remove("BANTER_REGISTRY_TOKEN")
        .env_remove("BANTER_REGISTRY_TOKEN_FILE")
        .env_remove("MAKEFLAGS")
        .env_remove("MFLAGS")
        .env_remove("MAKELEVEL")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let pgid = child.id();
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            kill_group(pgid);
            panic!("the walkthrough did not finish within 120 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (mut out, mut err) = (String::new(), String::new());
    child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    // Whatever the script left behind goes with its process group.
    kill_group(pgid);
    assert!(
        status.success(),
        "walkthrough failed ({status:?})\n--- script\n{script}\n--- stdout\n{out}\n--- stderr\n{err}"
    );

    // Each step did what the README says.
    assert!(out.contains("classic-duo"), "listing shows the demo packs:\n{out}");
    assert!(
        out.contains("\"name\": \"classic-duo\""),
        "latest classic-duo fetched:\n{out}"
    );
    assert!(
        out.contains("published my-first-pack@1.0.0 sha256:"),
        "the example pack was published:\n{out}"
    );
    assert!(
        out.contains("\"name\": \"my-first-pack\""),
        "get returned the pack:\n{out}"
    );
    assert!(
        out.lines().any(|l| l.starts_with("1.0.0 ")),
        "ls lists the version:\n{out}"
    );
    assert!(out.contains("tag latest -> 1.0.0"), "ls shows the latest tag:\n{out}");
    assert!(
        data.join("registry.db").exists(),
        "the database is in the data directory"
    );
    assert!(err.contains("listening on") || out.contains("listening on"), "{err}");
}
