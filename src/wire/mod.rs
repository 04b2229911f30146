//! Wire types for MSC2753 and MSC2444 (DESIGN §9).
