//! Shared by the CLI's and the engine's tests: a models directory over the installed one.

use std::path::Path;

/// Links every entry of `installed` into `dir` (an empty folder), so that `dir` sees every
/// installed file and can take more. The installed models' own `user` folder is not linked:
/// what a test installs stays in its own folder, never written through into (or colliding
/// with) models a developer installed.
pub fn link_installed_models(installed: &Path, dir: &Path) {
    for entry in std::fs::read_dir(installed).expect("the installed models can be listed") {
        let entry = entry.expect("an installed entry can be read");
        if entry.file_name() == stemscribe_engine::separate::USER_MODELS_DIR {
            continue;
        }
        std::os::unix::fs::symlink(entry.path(), dir.join(entry.file_name()))
            .expect("a link can be made in the test's folder");
    }
}
