//! The README walked as a new user would: `tests/readme-walk.sh` runs its
//! commands in order (quick start, sending a call, deploy, route, roll back)
//! against the real binary, comparing the replies with the README's byte for
//! byte. This test first checks that every command line of the walk is a
//! line of the README, so the two cannot drift apart.

use std::path::Path;
use std::process::Command;

fn workspace() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

#[test]
fn the_readme_runs_as_written() {
    let readme = std::fs::read_to_string(workspace().join("README.md")).unwrap();
    let readme_lines: std::collections::HashSet<&str> = readme.lines().map(str::trim_end).collect();
    let walk = std::fs::read_to_string(workspace().join("tests/readme-walk.sh")).unwrap();
    let mut checked = 0;
    for line in walk.lines().skip(1) {
        let line = line.trim_end();
        if line.is_empty() || line.starts_with('#') || line.contains("# walk-only") {
            continue;
        }
        assert!(
            readme_lines.contains(line),
            "tests/readme-walk.sh runs a line the README does not have:\n{line}"
        );
        checked += 1;
    }
    assert!(checked > 30, "only {checked} README lines in the walk");

    // As a user's shell would run it: without the variables `cargo test`
    // sets for its tests (they would make the nested cargo rebuild
    // dependencies whose build scripts watch them).
    let mut walk = Command::new("bash");
    walk.arg(workspace().join("tests/readme-walk.sh"));
    for (key, _) in std::env::vars() {
        let cargo_set = key.starts_with("CARGO_") && key != "CARGO_HOME";
        if cargo_set || key.starts_with("IVR_") || key == "OUT_DIR" {
            walk.env_remove(key);
        }
    }
    let output = walk.output().expect("running bash");
    assert!(
        output.status.success(),
        "the README walk failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
