//! `hoist rmi`: untag images and delete them with the layers only they use.

use super::{Context, Error, Format};
use crate::resolve::{self, familiar};
use std::process::ExitCode;

/// Arguments of `hoist rmi`.
#[derive(clap::Args)]
pub struct Args {
    /// Remove an image by ID even when several repositories tag it.
    #[arg(short, long)]
    force: bool,
    /// Output format: table (Docker's lines) or json.
    #[arg(long, default_value = "table")]
    format: Format,
    /// Images, by reference or ID.
    #[arg(required = true)]
    images: Vec<String>,
}

/// Runs `hoist rmi`.
pub fn run(ctx: &Context, args: Args) -> Result<ExitCode, Error> {
    let mut store = ctx.store()?;
    let mut failed = false;
    let mut json = Vec::new();
    for name in &args.images {
        let result = (|| -> Result<(), Error> {
            let r = resolve::image(&store, name)?;
            let tags: Vec<String> = match &r.reference {
                Some(reference) => vec![reference.to_string()],
                None => {
                    let repos: std::collections::BTreeSet<String> = r
                        .image
                        .tags
                        .iter()
                        .map(|t| {
                            hoist_oci::Reference::parse(t).map_or_else(|_| t.clone(), |x| x.name())
                        })
                        .collect();
                    if repos.len() > 1 && !args.force {
                        return Err(hoist_store::StoreError::MultipleTags(
                            r.image.id.short().to_owned(),
                        )
                        .into());
                    }
                    r.image.tags.clone()
                }
            };
            let removed = store.remove_image(&r.image.id, &tags, true)?;
            for t in &removed.untagged {
                if args.format == Format::Table {
                    println!("Untagged: {}", familiar(t));
                }
                json.push(serde_json::json!({"Untagged": familiar(t)}));
            }
            let deleted = removed
                .deleted_indexes
                .iter()
                .chain(&removed.deleted_image)
                .chain(&removed.deleted_images)
                .chain(removed.deleted_layers.iter());
            for d in deleted {
                if args.format == Format::Table {
                    println!("Deleted: {d}");
                }
                json.push(serde_json::json!({"Deleted": d.to_string()}));
            }
            Ok(())
        })();
        if let Err(e) = result {
            eprintln!("Error response from hoist: {e}");
            failed = true;
        }
    }
    if args.format == Format::Json {
        println!("{}", serde_json::Value::Array(json));
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
