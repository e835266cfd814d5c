-- The Lua pod API against real pods: results, errors, approvals,
-- credentials and budget, as an orchestrator script sees them.
local nucleus = require "nucleus"

local function tmpdir()
  local p = io.popen("mktemp -d /tmp/nu-lua-pod.XXXXXX")
  local dir = p:read("l")
  p:close()
  return dir
end

local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

describe("nucleus.pod", function()
  local dir, pod
  local secret = "lua-s3cret-9d8c7b"

  before_each(function()
    dir = tmpdir()
    write(dir .. "/hello.txt", "hello\n")
    write(dir .. "/.env", "KEY=" .. secret .. "\n")
    pod = assert(nucleus.pod {
      profile = "codegen", workspace = dir, audit = false,
      credentials = { env = { MY_SECRET = secret } },
      budget = { tool_calls = 20 },
    })
  end)

  after_each(function()
    if pod then pod:close() end
    os.execute("rm -rf " .. dir)
  end)

  it("reads a file", function()
    local r = assert(pod:read("hello.txt"))
    assert.are.equal("hello\n", r.content)
  end)

  it("returns nil and an error table for a denial", function()
    local r, err = pod:read(".env")
    assert.is_nil(r)
    assert.are.equal("path_denied", err.kind)
    assert.are.equal("deny", err.decision)
    assert.are.equal(5, err.step)
    assert.is_truthy(err.reason:find(".env", 1, true))
  end)

  it("rejects a malformed call as invalid_request", function()
    local r, err = pod:call { tool = "read" }
    assert.is_nil(r)
    assert.are.equal("invalid_request", err.kind)
  end)

  it("names the requested operation in a malformed call's denial", function()
    local _, err = pod:call { tool = "write", path = 7, content = "x" }
    assert.are.equal("invalid_request", err.kind)
    assert.are.equal("write_files", err.operation)
    _, err = pod:call { tool = "teleport", path = "x" }
    assert.are.equal("invalid_request", err.kind)
    assert.are.equal("invalid", err.operation)
    assert.is_truthy(err.reason:find("teleport", 1, true))
  end)

  it("returns binary file content as raw bytes", function()
    assert(pod:run("printf 'a\\000b' > bin.dat"))
    local r = assert(pod:read("bin.dat"))
    assert.are.equal("a\0b", r.content)
  end)

  it("redacts credential values from command output", function()
    local r = assert(pod:run("echo $MY_SECRET; echo $MY_SECRET >&2"))
    assert.are.equal("[REDACTED:MY_SECRET]\n", r.stdout)
    assert.are.equal("[REDACTED:MY_SECRET]\n", r.stderr)
  end)

  it("writes binary content and takes base64 arguments", function()
    assert(pod:write("x.bin", "\255\000\001"))
    local f = assert(io.open(dir .. "/x.bin", "rb"))
    assert.are.equal("\255\000\001", f:read("a"))
    f:close()
    local r = assert(pod:run{command = "cat", stdin = "aGVsbG8=",
                              stdin_encoding = "base64"})
    assert.are.equal("hello", r.stdout)
    local _, err = pod:write{path = "y.txt", content = "aGk=",
                             content_encoding = "rot13"}
    assert.are.equal("invalid_request", err.kind)
  end)

  it("truncates output past the cap and keeps the pod alive", function()
    -- Control bytes are escaped as six JSON bytes each: the worst case
    -- for the response frame.
    local r = assert(pod:run("head -c 1100000 /dev/zero | tr '\\0' '\\1'"))
    assert.are.equal(1048576, #r.stdout)
    assert.is_true(r.truncated)
    r = assert(pod:run("echo alive"))
    assert.are.equal("alive\n", r.stdout)
  end)

  it("keeps credential values out of error messages", function()
    local _, err = pod:read(secret .. ".txt")
    assert.is_falsy(err.reason:find(secret, 1, true))
  end)

  it("gates inline code and runs it once approved", function()
    local call = "python3 -c 'print(6 * 7)'"
    local r, err = pod:run(call)
    assert.is_nil(r)
    assert.are.equal("approval_required", err.kind)
    assert.is_truthy(err.approval_key:match("^run_bash:%x+$"))
    assert(pod:approve(err.approval_key))
    r = assert(pod:run(call))
    assert.are.equal("42\n", r.stdout)
    assert.are.equal("grant", r.approved_by)
    -- One use: the grant is gone.
    r, err = pod:run(call)
    assert.is_nil(r)
    assert.are.equal("approval_required", err.kind)
  end)

  it("asks the approve callback", function()
    local seen
    local p2 = assert(nucleus.pod {
      profile = "codegen", workspace = dir, audit = false,
      approve = function(request) seen = request; return "deny" end,
    })
    local r, err = p2:run("python3 -c 'print(1)'")
    assert.is_nil(r)
    assert.are.equal("approval_denied", err.kind)
    assert.are.equal("run_bash", seen.operation)
    p2:close()
  end)

  it("charges the budget and refuses bad charges", function()
    assert.is_true(pod:charge { usd = 0.5, input_tokens = 100 })
    local ok, err = pod:charge { usd = -1 }
    assert.is_nil(ok)
    assert.are.equal("invalid_request", err.kind)
    ok, err = pod:charge { usd = 1e9 }
    assert.is_nil(ok)
    assert.are.equal("budget_exhausted", err.kind)
    local info = pod:info()
    assert.are.equal(0.5, info.budget.spent.usd)
  end)

  it("stops at the tool-call budget", function()
    for _ = 1, 20 do assert(pod:read("hello.txt")) end
    local r, err = pod:read("hello.txt")
    assert.is_nil(r)
    assert.are.equal("budget_exhausted", err.kind)
  end)

  it("attenuates and never widens", function()
    assert(pod:attenuate("read_only"))
    local r, err = pod:write("new.txt", "x")
    assert.is_nil(r)
    assert.are.equal("capability_denied", err.kind)
  end)

  it("refuses to spawn without manage_pods", function()
    local child, err = pod:spawn { profile = "read_only" }
    assert.is_nil(child)
    assert.are.equal("capability_denied", err.kind)
  end)

  it("explains the last decision", function()
    pod:read(".env")
    local e = pod:explain()
    assert.are.equal("deny", e.decision)
    assert.are.equal(5, e.step)
  end)

  it("prints an error table's kind and reason", function()
    local _, err = pod:read(".env")
    assert.are.equal("path_denied: " .. err.reason, tostring(err))
    local ok, raised = pcall(function() assert(pod:read(".env")) end)
    assert.is_false(ok)
    assert.are.equal("path_denied: " .. err.reason, tostring(raised))
  end)

  it("prints why pod creation failed", function()
    local p, err = nucleus.pod {
      workspace = dir, audit = false, isolation = "nosuchtier",
    }
    assert.is_nil(p)
    local text = tostring(err)
    assert.are.equal(err.kind .. ": " .. err.reason, text)
    assert.is_truthy(text:find("unknown isolation 'nosuchtier'", 1, true))
    local ok, raised = pcall(function()
      assert(nucleus.pod { workspace = dir, audit = false,
                           isolation = "nosuchtier" })
    end)
    assert.is_false(ok)
    assert.are.equal(text, tostring(raised))
  end)

  it("rejects an IP address in the network.domains option", function()
    local ok, msg = pcall(nucleus.pod, {
      workspace = dir, audit = false, network = { domains = { "10.1.1.1" } },
    })
    assert.is_false(ok)
    assert.is_truthy(msg:find("put IP addresses in network.allow", 1, true))
  end)

  it("reports a closed pod", function()
    pod:close()
    assert.is_true(pod.closed)
    assert.has_error(function() pod:read("hello.txt") end)
    pod = nil
  end)
end)
