//! Deny by default: every import of a component that the host does not
//! provide is linked as a function that traps when called, naming the import.
//!
//! (wasmtime's own `define_unknown_imports_as_traps` defines stubs under
//! the exact imported version, which shadows the semver-compatible WASI
//! implementation: a guest importing `wasi:cli/stdout@0.2.6` would get the
//! stub instead of the host's 0.2.12. So matching is done here.)

use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, Linker, ResourceType};
use wasmtime::{Engine, bail};

/// True when the host provides `import` (`pkg:ns/iface@version`) in a
/// semver-compatible version.
pub(crate) fn is_provided(import: &str) -> bool {
    let (name, version) = import.split_once('@').unwrap_or((import, ""));
    super::capabilities::PROVIDES
        .iter()
        .flat_map(|provides| provides.iter())
        .any(|(provided, host_version)| {
            *provided == name && semver_compatible(version, host_version)
        })
}

/// Same major version, or for 0.x the same minor version (no pre-release tags).
fn semver_compatible(a: &str, b: &str) -> bool {
    let track = |v: &str| -> Option<(u64, u64)> {
        let mut parts = v.split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        Some((major, if major == 0 { minor } else { 0 }))
    };
    match (track(a), track(b)) {
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

/// Link every import of `component` the host does not provide as a trap.
pub(crate) fn stub_unknown_imports<T: 'static>(
    engine: &Engine,
    linker: &mut Linker<T>,
    component: &Component,
) -> wasmtime::Result<()> {
    let ty = component.component_type();
    let mut root = linker.root();
    for (name, import) in ty.imports(engine) {
        if is_provided(name) {
            continue;
        }
        match import.ty {
            ComponentItem::ComponentInstance(instance) => {
                let mut stub = root.instance(name)?;
                for (export, item) in instance.exports(engine) {
                    match item.ty {
                        ComponentItem::ComponentFunc(_) => {
                            let denied = format!("{name}#{export}");
                            stub.func_new(export, move |_, _, _, _| {
                                bail!("denied import: `{denied}` is not available to IVR apps")
                            })?;
                        }
                        ComponentItem::Resource(_) => {
                            stub.resource(export, ResourceType::host::<()>(), |_, _| Ok(()))?;
                        }
                        _ => {}
                    }
                }
            }
            ComponentItem::ComponentFunc(_) => {
                let denied = name.to_owned();
                root.func_new(name, move |_, _, _, _| {
                    bail!("denied import: `{denied}` is not available to IVR apps")
                })?;
            }
            ComponentItem::Resource(_) => {
                root.resource(name, ResourceType::host::<()>(), |_, _| Ok(()))?;
            }
            _ => bail!("the component imports `{name}`, which is not a function or an interface"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn semver_compatible_versions_match() {
        assert!(is_provided("wasi:cli/stdout@0.2.6"));
        assert!(is_provided("wasi:cli/stdout@0.2.0"));
        assert!(!is_provided("wasi:cli/stdout@0.3.0"));
        assert!(is_provided("ivr:app/state@0.2.3"));
        assert!(!is_provided("ivr:app/state@0.1.0"));
        assert!(!is_provided("ivr:app/state@1.0.0"));
        assert!(is_provided("ivr:app/state@0.3.0"));
        assert!(is_provided("ivr:app/kv@0.3.0"));
        assert!(!is_provided("ivr:app/kv@0.2.0"));
        assert!(is_provided("wasi:http/outgoing-handler@0.2.6"));
        assert!(!is_provided("wasi:keyvalue/store@0.2.0-draft"));
        assert!(!is_provided("wasi:cli/stdout"));
    }
}
