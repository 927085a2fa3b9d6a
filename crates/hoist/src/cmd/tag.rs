//! `hoist tag SOURCE TARGET`.

use super::{Context, Error};
use crate::resolve;
use hoist_oci::Reference;
use hoist_store::{LockMode, TagTarget};
use std::process::ExitCode;

/// Arguments of `hoist tag`.
#[derive(clap::Args)]
pub struct Args {
    /// The image, by reference or ID.
    source: String,
    /// The new reference.
    target: String,
}

/// Runs `hoist tag`.
pub fn run(ctx: &Context, args: Args) -> Result<ExitCode, Error> {
    let mut store = ctx.store()?;
    let target = Reference::parse(&args.target)?.with_default_tag();
    if target.digest().is_some() {
        return Err(Error::Msg(format!(
            "refusing to create a tag with a digest reference: {}",
            args.target
        )));
    }
    let _lock = store.lock(LockMode::Shared)?;
    let src = resolve::image(&store, &args.source)?;
    // A tag naming an index (or one manifest of several) is copied as it is.
    let named = match &src.reference {
        Some(r) => store.index().tag_target(&r.to_string())?,
        None => None,
    };
    match named {
        Some(TagTarget::Index(d) | TagTarget::Manifest { digest: d, .. }) => {
            store.index_mut().set_tag_target(&target.to_string(), &d)?
        }
        None => store
            .index_mut()
            .set_tag(&target.to_string(), &src.image.id)?,
    };
    Ok(ExitCode::SUCCESS)
}
