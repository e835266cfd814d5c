-- One orchestrator script against the ns and vm tiers: the same calls
-- must give the same decisions and results. The vm pod boots a QEMU
-- microvm from an image built here with `nucleus vm image build`.
local nucleus = require "nucleus"

local function capture(command)
  local p = io.popen(command)
  local out = p:read("a")
  local ok = p:close()
  return ok, out
end

local function tmpdir()
  local _, dir = capture("mktemp -d /tmp/nu-lua-vm.XXXXXX")
  return (dir:gsub("%s+$", ""))
end

local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

-- Run the script and keep what an orchestrator acts on: success, the
-- payload, and for failures the kind and decision.
local function scenario(pod)
  local steps = {}
  local function keep(name, r, err)
    if r == nil then
      steps[#steps + 1] = { name, "error", err.kind, err.decision }
      return
    end
    steps[#steps + 1] = {
      name, "ok", r.content, r.bytes, r.exit_code, r.stdout,
      r.replacements, r.matches and #r.matches or nil,
    }
  end

  keep("read", pod:read("hello.txt"))
  keep("write", pod:write("out/new.txt", "one\ntwo\n"))
  keep("edit", pod:edit("out/new.txt", "two", "2"))
  keep("read back", pod:read("out/new.txt"))
  keep("glob", pod:glob("**/*.txt"))
  keep("grep", pod:grep("one", { path = "out" }))
  keep("run", pod:run("cat hello.txt out/new.txt; ls out"))
  keep("exit status", pod:run("exit 3"))
  keep("credential", pod:run("test \"$MY_SECRET\" = lua-vm-cred-77"))
  keep("secret file", pod:read(".env"))
  keep("escape", pod:read("../../etc/shadow"))
  return steps
end

describe("the same script on ns and vm pods", function()
  local nu_bin = os.getenv("NU_BIN")
  local image, reason

  setup(function()
    if nu_bin == nil then
      reason = "NU_BIN is not set to the nucleus binary"
      return
    end
    if not capture("command -v qemu-system-x86_64") then
      reason = "qemu-system-x86_64 not installed (qemu-system-x86)"
      return
    end
    image = tmpdir()
    local ok, out = capture(nu_bin .. " vm image build --out " .. image ..
                            " 2>&1")
    if not ok then
      reason = "cannot build the guest image: " .. out
    end
  end)

  teardown(function()
    if image then os.execute("rm -rf " .. image) end
  end)

  it("gives identical decisions and results", function()
    if reason then
      print("SKIP: " .. reason)
      pending(reason)
      return
    end
    local results = {}
    for _, isolation in ipairs { "ns", "vm:" .. image } do
      local dir = tmpdir()
      write(dir .. "/hello.txt", "hello\n")
      write(dir .. "/.env", "KEY=lua-vm-secret\n")
      local pod = assert(nucleus.pod {
        profile = "codegen", workspace = dir, audit = false,
        isolation = isolation,
        credentials = { env = { MY_SECRET = "lua-vm-cred-77" } },
      })
      results[#results + 1] = scenario(pod)
      pod:close()
      os.execute("rm -rf " .. dir)
    end
    assert.are.same(results[1], results[2])
    assert.are.equal(0, results[1][9][5])
    assert.are.equal("error", results[1][10][2])
    assert.are.equal("path_denied", results[1][10][3])
  end)
end)
