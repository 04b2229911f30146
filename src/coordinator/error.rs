//! [`PeekError`]: why a client's `/peek` failed, whichever machine refused it.

use crate::local::LocalPeekError;
use crate::outbound::OutboundPeekError;

/// Why a client peek (`Peeking::handle_client_peek`) failed.
///
/// The HTTP mapping lives in [`crate::wire`]: a local refusal maps like [`LocalPeekError`];
/// a remote room that could not be peeked maps like [`OutboundPeekError`] (R27: the remote's
/// refusal is passed through, `NoCandidates` is 404 `M_NOT_FOUND`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PeekError {
    /// The local checks refused the peek (R5–R8, caps).
    #[error(transparent)]
    Local(#[from] LocalPeekError),
    /// The room is not resident and no federated peek into it could be opened (R27).
    #[error(transparent)]
    Remote(#[from] OutboundPeekError),
}
