-- nucleus.identity from Lua: SPIFFE IDs, SVIDs, JWT-SVIDs, and an mTLS
-- client talking to a nucleus daemon on 127.0.0.1.
local nucleus = require "nucleus"
local identity = nucleus.identity
local bin = os.getenv("NU_BIN")

local function sh(cmd)
  assert(os.execute(cmd), "command failed: " .. cmd)
end

describe("nucleus.identity", function()
  local home

  setup(function()
    home = io.popen("mktemp -d /tmp/nu-lua-identity.XXXXXX"):read("l")
    sh(string.format("%s ca init --trust-domain example.test --home %s >/dev/null", bin, home))
  end)

  teardown(function()
    os.execute("[ -f " .. home .. "/serve.pid ] && kill $(cat " .. home .. "/serve.pid) 2>/dev/null")
    os.execute("rm -rf " .. home)
  end)

  it("parses SPIFFE IDs and rejects invalid ones", function()
    local id = assert(identity.parse("spiffe://example.test/ns/a/pod/b"))
    assert.are.equal("example.test", id.trust_domain)
    assert.are.equal("/ns/a/pod/b", id.path)
    local bad, reason = identity.parse("spiffe://Example.test/x")
    assert.is_nil(bad)
    assert.is_truthy(reason:find("uppercase"))
    assert.is_nil((identity.parse("spiffe://example.test/a/../b")))
    assert.is_nil((identity.parse("https://example.test/a")))
  end)

  it("issues an SVID that verifies in its trust domain only", function()
    local svid = assert(identity.issue("spiffe://example.test/ns/ci/pod/x", 60, home))
    assert.are.equal("spiffe://example.test/ns/ci/pod/x",
                     identity.verify(svid.cert_pem, svid.bundle_pem, "example.test"))
    local ok, reason = identity.verify(svid.cert_pem, svid.bundle_pem, "example.test.evil")
    assert.is_nil(ok)
    assert.is_truthy(reason:find("trust domain"))
    assert.is_true(svid.not_after - svid.not_before <= 60 + 60)
  end)

  it("issues and verifies JWT-SVIDs with an audience", function()
    local token = assert(identity.jwt("spiffe://example.test/ns/ci/pod/x", "billing", 60, home))
    assert.are.equal("spiffe://example.test/ns/ci/pod/x",
                     identity.jwt_verify(token, "billing", home))
    assert.is_nil((identity.jwt_verify(token, "other", home)))
    local header = "eyJhbGciOiJub25lIn0"   -- {"alg":"none"}
    local forged = header .. token:match("(%..*)$")
    assert.is_nil((identity.jwt_verify(forged, "billing", home)))
  end)

  it("connects to the daemon over mTLS and sees its SPIFFE ID", function()
    local dir = home .. "/client"
    sh(string.format("%s svid issue --id spiffe://example.test/orchestrator/client --out %s --home %s >/dev/null",
                     bin, dir, home))
    sh(string.format("%s svid issue --id spiffe://example.test/node/daemon --out %s/server --home %s >/dev/null",
                     bin, home, home))
    local authz = assert(io.open(home .. "/authz.json", "w"))
    authz:write('[{"id": "spiffe://example.test/orchestrator/*", "methods": ["server.health"], "namespaces": []}]')
    authz:close()
    local port = 20000 + math.random(0, 20000)
    sh(string.format("%s serve --home %s/srv --no-audit --listen 127.0.0.1:%d --svid %s/server "
                     .. "--authz %s/authz.json >/dev/null 2>%s/serve.log </dev/null & echo $! > %s/serve.pid",
                     bin, home, port, home, home, home, home))
    local conn
    for _ = 1, 50 do
      conn = identity.connect { host = "127.0.0.1", port = port, svid_dir = dir,
                                trust_domain = "example.test" }
      if conn then break end
      os.execute("sleep 0.1")
    end
    assert.is_truthy(conn)
    assert.are.equal("spiffe://example.test/node/daemon", conn:peer_id())
    assert(conn:send('{"jsonrpc":"2.0","id":1,"method":"server.health"}\n'))
    local line = assert(conn:receive())
    assert.is_truthy(line:find('"status":"ok"', 1, true))
    conn:close()
    os.execute("kill $(cat " .. home .. "/serve.pid)")
  end)
end)
