//! Optional `tracing` (feature `tracing`): spans for the `handle_*` calls, `debug` events for
//! every output, `warn` events for failures and failovers. Without the feature every macro
//! here expands to nothing, so its arguments are not even evaluated: no cost at all.

/// Enters a `debug` span until the end of the enclosing block.
macro_rules! span {
    ($($arg:tt)*) => {
        #[cfg(feature = "tracing")]
        let _span = tracing::debug_span!($($arg)*).entered();
    };
}

/// A `debug` event.
macro_rules! debug {
    ($($arg:tt)*) => {
        #[cfg(feature = "tracing")]
        tracing::debug!($($arg)*);
    };
}

/// A `warn` event.
macro_rules! warning {
    ($($arg:tt)*) => {
        #[cfg(feature = "tracing")]
        tracing::warn!($($arg)*);
    };
}

/// A `debug` event for an output about to be handed to the host (`$output` is an `Option`).
macro_rules! output {
    ($machine:literal, $output:expr) => {
        #[cfg(feature = "tracing")]
        if let Some(output) = &$output {
            tracing::debug!(machine = $machine, ?output, "output");
        }
    };
}

pub(crate) use {debug, output, span, warning};
