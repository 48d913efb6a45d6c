//! keygate-edge: the Cloudflare Worker that checks publishable keys. Built out in the edge issue.
