//! `ivr-host new NAME`: a ready app project — builds with the plain
//! toolchain command, has passing tests (`ivr_sdk::testing`), and a short
//! README. Rust for now.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

/// `ivr-host new NAME [--template hello|menu] [--lang rust]`.
#[derive(Debug, clap::Args)]
pub struct NewArgs {
    /// The app's name: the project directory and the crate.
    pub name: String,
    /// What the app starts as.
    #[arg(long, value_enum, default_value_t = Template::Hello)]
    pub template: Template,
    /// The app's language.
    #[arg(long, value_enum, default_value_t = Language::Rust)]
    pub lang: Language,
    /// Where the project goes [default: ./NAME].
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// The `ivr-sdk` crate to depend on [default: the guest-sdk of the
    /// clone this ivr-host was built from].
    #[arg(long, value_name = "PATH")]
    pub sdk: Option<PathBuf>,
}

/// A starting point.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Template {
    /// Greets the caller and hangs up.
    Hello,
    /// A one-level menu with retries and a transfer to an agent.
    Menu,
}

/// A language for the app.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Language {
    /// Rust, with `ivr-sdk`.
    Rust,
    /// Python (componentize-py): not yet generated.
    Python,
    /// JavaScript (componentize-js): not yet generated.
    Js,
}

const CARGO_TOML: &str = include_str!("../../templates/rust/Cargo.toml.tmpl");
const HELLO: &str = include_str!("../../templates/rust/hello.rs.tmpl");
const MENU: &str = include_str!("../../templates/rust/menu.rs.tmpl");
const README: &str = include_str!("../../templates/rust/README.md.tmpl");
const GITIGNORE: &str = include_str!("../../templates/rust/gitignore.tmpl");

/// Create the project.
pub fn run(args: NewArgs) -> anyhow::Result<()> {
    crate::apps::validate_app_name(&args.name).map_err(anyhow::Error::msg)?;
    if !matches!(args.lang, Language::Rust) {
        bail!(
            "`ivr-host new` generates Rust apps for now; for Python and JavaScript, target the \
             `ivr-app` world in wit/ivr.wit with componentize-py or componentize-js (the README's \
             \"Write an app\" names both)"
        );
    }
    let sdk = match args.sdk {
        Some(path) => path,
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-sdk"),
    };
    let sdk = sdk.canonicalize().with_context(|| {
        format!(
            "ivr-sdk is not at {}: pass --sdk PATH (the guest-sdk directory of an ivr-host clone)",
            sdk.display()
        )
    })?;
    let dir = args.dir.unwrap_or_else(|| PathBuf::from(&args.name));
    if dir.exists() {
        bail!(
            "{} already exists; choose another name or --dir",
            dir.display()
        );
    }
    let fill = |template: &str| {
        template
            .replace("{{name}}", &args.name)
            .replace("{{crate}}", &args.name.replace('-', "_"))
            .replace("{{sdk}}", &sdk.display().to_string())
    };
    let app = match args.template {
        Template::Hello => HELLO,
        Template::Menu => MENU,
    };
    let files = [
        ("Cargo.toml", fill(CARGO_TOML)),
        ("src/lib.rs", fill(app)),
        ("README.md", fill(README)),
        (".gitignore", fill(GITIGNORE)),
    ];
    for (path, text) in files {
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    say!(
        "created {} ({} app in Rust): cd {} && cargo test",
        dir.display(),
        match args.template {
            Template::Hello => "hello",
            Template::Menu => "menu",
        },
        dir.display()
    );
    Ok(())
}
