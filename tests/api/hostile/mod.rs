//! Hostile input over raw TCP: bytes no well-behaved client sends, written
//! straight to the socket so nothing on our side tidies them first.
//!
//! Every case must get a well-formed HTTP answer. Requests that reach the
//! handler get the platform's shapes (JSON `statusCode/message/correlationId`
//! for 400s, an empty 403 for auth); requests hyper refuses before routing
//! (an unparsable request line, a URI over 65,534 bytes, a too-large head)
//! get hyper's empty-bodied 400/414/431 and a closed connection. After each
//! hostile connection the server must still answer a normal request.

mod framing;
mod query;
mod raw;
