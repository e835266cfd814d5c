-- network_only: fetch public web pages, touch nothing local.
--
-- web_fetch and web_search with any DNS name; no IP-literal destinations
-- (network.allow is empty), so "http://169.254.169.254/" and internal
-- addresses are denied.  No file access at all: the path allow set is
-- empty.  Without private data the trifecta cannot complete, so fetches
-- never need approval.
return nucleus.profile {
  name = "network_only",
  description = "web_fetch and web_search to any DNS name; no files, commands or IP literals",
  capabilities = { web_fetch = "always", web_search = "always" },
  paths = { allow = {}, block = {}, write_block = {} },
  commands = { allow = {}, block = {} },
  network = { allow = {}, domains = nucleus.ALL, trusted = {} },
  budget = { usd = 2, input_tokens = 500000, output_tokens = 50000, tool_calls = 300 },
  time = { ttl = 3600 },
  approvals = {},
}
