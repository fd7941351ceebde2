//! `ivr-host new`: each template makes a project whose own tests pass with
//! plain `cargo test`, which builds to a component with the plain wasm
//! command, and which `ivr-host simulate` runs.

mod common;

use std::path::Path;
use std::process::Command;

fn run(what: &str, command: &mut Command) -> String {
    let output = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        output.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn cargo(dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    command
        .current_dir(dir)
        .args(args)
        // Offline: every crate a template needs is already in the registry
        // cache (the workspace uses them); the workspace's target directory
        // shares their builds.
        .arg("--offline")
        .env(
            "CARGO_TARGET_DIR",
            common::workspace().join("target/new-apps"),
        );
    command
}

fn ivr_host() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ivr-host"))
}

#[test]
fn every_template_builds_passes_its_tests_and_simulates() {
    let dir = tempfile::tempdir().unwrap();
    for (name, template, press, hears) in [
        (
            "my-hello",
            "hello",
            None,
            "says  \"Hello from my-hello. Goodbye!\"",
        ),
        (
            "my-menu",
            "menu",
            Some("1"),
            "says  \"We are open from 9 to 5",
        ),
    ] {
        run(
            "ivr-host new",
            ivr_host()
                .current_dir(dir.path())
                .args(["new", name, "--template", template]),
        );
        let project = dir.path().join(name);
        let tests = run("cargo test", &mut cargo(&project, &["test"]));
        assert!(tests.contains("test result: ok."), "{tests}");
        run(
            "cargo build",
            &mut cargo(
                &project,
                &["build", "--release", "--target", "wasm32-wasip2"],
            ),
        );
        let component = common::workspace()
            .join("target/new-apps/wasm32-wasip2/release")
            .join(format!("{}.wasm", name.replace('-', "_")));
        let mut simulate = ivr_host();
        simulate.arg("simulate").arg(&component);
        if let Some(digits) = press {
            simulate.args(["--press", digits]);
        }
        let shown = run("ivr-host simulate", &mut simulate);
        assert!(shown.contains(hears), "{shown}");
        assert!(shown.trim_end().ends_with("hangs up"), "{shown}");
    }
    // A name that is not an app name, an existing directory, another language: refused.
    let refused = ivr_host()
        .current_dir(dir.path())
        .args(["new", "my-menu"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("already exists"));
    let refused = ivr_host()
        .current_dir(dir.path())
        .args(["new", "py-app", "--lang", "python"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&refused.stderr).contains("componentize-py"));
}
