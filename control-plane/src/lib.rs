//! The control plane arrives with issue 4; the workspace keeps its place so the layout tells the
//! architecture from the start.
