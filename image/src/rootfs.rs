//! The tree unpacked into a directory, for a container started straight from it (the lab's LXC
//! container). Modes are set explicitly (the umask plays no part); owners are whoever runs this
//! (root in the lab), and the caller shifts them to the container's id range.

use std::fs::{self, Permissions};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::error::ImageError;
use crate::layout::{Content, Node, Tree};

/// Writes `tree` under `dir`, which is created if missing and should be empty.
pub(crate) fn write(tree: &Tree, dir: &Path) -> Result<(), ImageError> {
    let err = |path: &Path| {
        let path = path.to_owned();
        move |source| ImageError::Write { path, source }
    };
    fs::create_dir_all(dir).map_err(err(dir))?;
    fs::set_permissions(dir, Permissions::from_mode(crate::layout::DIR_MODE)).map_err(err(dir))?;
    for (relative, node) in tree {
        let path = dir.join(relative);
        match node {
            Node::Dir { mode } => {
                fs::create_dir(&path).map_err(err(&path))?;
                fs::set_permissions(&path, Permissions::from_mode(*mode)).map_err(err(&path))?;
            }
            Node::Symlink { target } => std::os::unix::fs::symlink(target, &path).map_err(err(&path))?,
            Node::File { content, mode } => {
                match content {
                    Content::Text(bytes) => fs::write(&path, bytes).map_err(err(&path))?,
                    Content::Host(source) => {
                        fs::copy(source, &path)
                            .map_err(|e| ImageError::Read { path: source.clone(), source: e })?;
                    }
                }
                fs::set_permissions(&path, Permissions::from_mode(*mode)).map_err(err(&path))?;
            }
        }
    }
    Ok(())
}
