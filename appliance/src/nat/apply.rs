//! Putting a ruleset in force: one atomic transaction that replaces our table whole, then the
//! table read back and compared with what was built. Only `inet proximity` is ever named.

use super::error::NatError;
use super::nft::Nft;
use super::readback::Listing;
use super::ruleset::Ruleset;

/// Replaces our table with `ruleset` and checks that the kernel holds exactly it. Returns the
/// listing in force.
pub(super) async fn apply(nft: &Nft, ruleset: &Ruleset) -> Result<Listing, NatError> {
    let batch = serde_json::to_string(&ruleset.replace_batch()).map_err(NatError::Encode)?;
    nft.apply(&batch).await?;
    let intended = Listing::of(&ruleset.objects).map_err(NatError::Encode)?;
    let found = Listing::parse(&nft.list_table().await?).map_err(NatError::Listing)?;
    intended.compare(&found).map_err(NatError::Mismatch)?;
    Ok(found)
}

/// Removes our table if it is there (NAT turned off in the config).
pub(super) async fn remove(nft: &Nft) -> Result<(), NatError> {
    let batch = serde_json::to_string(&Ruleset::remove_batch()).map_err(NatError::Encode)?;
    nft.apply(&batch).await?;
    Ok(())
}
