-- pod_network.lua: the pod side of test_pod_network.py.
--
--   nucleus run pod_network.lua PHASE PROFILE WORKSPACE
--
-- Each phase creates one pod with an egress policy and drives it through
-- the Lua API, the way an orchestrator does.  test_pod_network.py reads
-- these output lines:
--   ok - NAME, not ok - NAME: DETAIL    one check each
--   info KEY VALUE                      a fact the driver needs
--   wait TAG                            the phase blocks until the driver
--                                       writes a line
--   done                                the phase reached its end
-- The names allowed.test and blocked.test resolve through the hosts file
-- that the driver mounts over /etc/hosts for this process only.
local nucleus = require "nucleus"

local phase, profile, workspace = arg[1], arg[2], arg[3]
if not (phase and profile and workspace) then
  io.stderr:write("usage: nucleus run pod_network.lua PHASE PROFILE WORKSPACE\n")
  return 2
end

local ALLOWED = "http://allowed.test:8080/"
local HELLO = "hello from 10.252.0.2:8080 host=allowed.test:8080\n"

local function emit(line)
  io.stdout:write(line, "\n")
  io.stdout:flush()
end

local function check(name, cond, detail)
  if cond then
    emit("ok - " .. name)
  else
    emit("not ok - " .. name .. ": " .. tostring(detail))
  end
end

-- A one-line description of a call's outcome for failure messages.
local function describe(r, e)
  if r then
    return string.format("result exit_code=%s status=%s stdout=%q stderr=%q body=%q",
                         tostring(r.exit_code), tostring(r.status),
                         tostring(r.stdout), tostring(r.stderr), tostring(r.body))
  end
  return string.format("error decision=%s kind=%s step=%s reason=%q",
                       tostring(e.decision), tostring(e.kind), tostring(e.step),
                       tostring(e.reason))
end

local function own_pid()
  local f = assert(io.open("/proc/self/stat"))
  local pid = f:read("l"):match("^(%d+)")
  f:close()
  return pid
end

local function wait_for_driver(tag)
  emit("wait " .. tag)
  return io.read("l")
end

local function has_leg(info, leg)
  for _, v in ipairs(info.exposure) do
    if v == leg then return true end
  end
  return false
end

local function new_pod()
  local pod, err = nucleus.pod { profile = profile, workspace = workspace, timeout = 20 }
  if not pod then
    emit("not ok - pod create: " .. tostring(err and err.reason or err))
    os.exit(1)
  end
  emit("info pid " .. own_pid())
  emit("info pod " .. pod.id)
  return pod
end

-- Run a command in the pod and return the result or nil, err.
local function run(pod, command)
  return pod:run(command, { timeout = 20 })
end

-- ---------------------------------------------------------------------
-- web_fetch through the pipeline.

local function phase_fetch()
  local pod = new_pod()

  local r, e = pod:fetch(ALLOWED)
  check("fetch allowed name succeeds", r and r.ok, describe(r, e))
  check("fetch allowed name status 200", r and r.status == 200, describe(r, e))
  check("fetch allowed name body", r and r.body == HELLO, describe(r, e))

  local info = pod:info()
  check("fetch makes the session untrusted", has_leg(info, "untrusted"),
        "exposure has no untrusted leg")
  check("fetch leaves the session without private data", not has_leg(info, "private"),
        "exposure already has the private leg")

  -- Denied by the policy in step 5, before any connection is made.
  local denied = {
    { "fetch non-allowed name", "http://blocked.test:8080/" },
    { "fetch non-allowed IP literal", "http://10.252.0.3:8080/" },
    { "fetch decimal IP literal", "http://184156163:8080/" },
    { "fetch allowed IP other port", "http://10.252.0.2:9090/" },
    { "fetch localhost", "http://localhost:8080/" },
  }
  for _, case in ipairs(denied) do
    r, e = pod:fetch(case[2])
    check(case[1] .. " denied", r == nil and e.kind == "network_denied"
          and e.decision == "deny", describe(r, e))
  end

  -- Other schemes never reach a client.
  for _, url in ipairs { "ftp://allowed.test/file", "file:///etc/passwd",
                         "gopher://allowed.test:8080/", "dict://allowed.test:8080/" } do
    r, e = pod:fetch(url)
    check("fetch scheme " .. url:match("^(%a+):") .. " denied",
          r == nil and (e.kind == "invalid_request" or e.kind == "network_denied"),
          describe(r, e))
  end

  -- Redirects are checked hop by hop.
  r, e = pod:fetch("http://allowed.test:8080/redirect?to=http://allowed.test:8080/after")
  check("fetch redirect within the allowlist", r and r.ok and r.status == 200
        and r.url == "http://allowed.test:8080/after", describe(r, e))
  r, e = pod:fetch("http://allowed.test:8080/redirect?to=http://blocked.test:8080/")
  check("fetch redirect to non-allowed name refused",
        r == nil and e.kind == "network_denied", describe(r, e))
  r, e = pod:fetch("http://allowed.test:8080/redirect?to=http://10.252.0.3:8080/")
  check("fetch redirect to non-allowed IP refused",
        r == nil and e.kind == "network_denied", describe(r, e))

  -- The test CA is not in the system store, so TLS verification fails.
  r, e = pod:fetch("https://allowed.test:8443/")
  check("fetch https with an unknown CA fails", r == nil and e.kind ~= "network_denied",
        describe(r, e))

  -- Private data now completes the trifecta: a fetch can carry it out.
  r, e = pod:read("notes.txt")
  check("read private notes", r ~= nil, describe(r, e))
  r, e = pod:fetch(ALLOWED)
  check("fetch after private read needs approval",
        r == nil and e.kind == "approval_required", describe(r, e))
  check("fetch after private read names the trifecta",
        e ~= nil and tostring(e.reason):find("trifecta", 1, true) ~= nil, describe(r, e))
  check("fetch after private read is pending", #pod:pending() == 1,
        #pod:pending() .. " pending approvals")

  pod:close()
end

-- ---------------------------------------------------------------------
-- Commands inside the pod.

local PROBE = "/usr/bin/python3 /workspace/probe.py "

local function phase_run()
  local pod = new_pod()

  local r, e = run(pod, "printf '%s' \"$HTTP_PROXY\"")
  check("pod has HTTP_PROXY", r and r.exit_code == 0 and r.stdout:match("^http://[%d.]+:3128$"),
        describe(r, e))
  local proxy_addr = r and r.stdout:match("^http://([%d.]+):") or "0.0.0.0"
  emit("info proxy " .. proxy_addr)

  r, e = run(pod, "curl -sS -m 5 " .. ALLOWED)
  check("curl via proxy to allowed name", r and r.exit_code == 0 and r.stdout == HELLO,
        describe(r, e))
  r, e = run(pod, "curl -sS -m 5 --cacert /workspace/ca.pem https://allowed.test:8443/")
  check("curl https via CONNECT to allowed name",
        r and r.exit_code == 0 and r.stdout:find("hello from 10.252.0.2:8443", 1, true),
        describe(r, e))
  -- The pipeline reads curl's URL and denies the call before it runs.
  r, e = run(pod, "curl -sS -m 5 http://blocked.test:8080/")
  check("curl to non-allowed name denied by the pipeline",
        r == nil and e.kind == "network_denied" and e.step == 5, describe(r, e))
  -- The proxy itself rejects requests the pipeline cannot see.
  local rejected = {
    { "proxy rejects non-allowed name", "http://blocked.test:8080/" },
    { "proxy rejects non-allowed IP literal", "http://10.252.0.3:8080/" },
    { "proxy rejects host address", "http://10.252.0.1:8081/" },
  }
  for _, case in ipairs(rejected) do
    r, e = run(pod, PROBE .. "proxy-get " .. case[2])
    check(case[1], r and r.exit_code == 0 and r.stdout:match("^HTTP/1%.%d 403"),
          describe(r, e))
  end
  r, e = run(pod, PROBE .. "proxy-raw 'BOGUS\\r\\n\\r\\n'")
  check("proxy rejects a malformed request",
        r and r.exit_code == 0 and r.stdout:match("^HTTP/1%.%d 400"), describe(r, e))

  -- Direct connections: the allow entry 10.252.0.2:8080 works, nothing else.
  r, e = run(pod, "curl -sS -m 5 --noproxy '*' http://10.252.0.2:8080/")
  check("direct connect to allowed address", r and r.exit_code == 0
        and r.stdout == "hello from 10.252.0.2:8080 host=10.252.0.2:8080\n", describe(r, e))
  local blocked = {
    { "direct connect to non-allowed address", "tcp 10.252.0.3 8080" },
    { "direct connect to allowed address other port", "tcp 10.252.0.2 9090" },
    { "direct connect to host address", "tcp 10.252.0.1 22" },
    { "DNS over UDP to test resolver", "dns-udp 10.252.0.2" },
    { "DNS over TCP to test resolver", "dns-tcp 10.252.0.2" },
    { "DNS over UDP to proxy address", "dns-udp " .. proxy_addr },
    { "DNS over TCP to proxy address", "dns-tcp " .. proxy_addr },
    { "IPv6 connect to test server", "tcp6 fd5a:6e74::2 8080" },
  }
  for _, case in ipairs(blocked) do
    r, e = run(pod, PROBE .. case[2])
    check(case[1] .. " blocked", r and r.exit_code == 3 and r.stdout:match("^blocked"),
          describe(r, e))
  end

  r, e = run(pod, PROBE .. "v6-addrs")
  check("pod has no global IPv6 address", r and r.exit_code == 0 and r.stdout == "",
        describe(r, e))

  pod:close()
end

-- ---------------------------------------------------------------------
-- Drift: the driver changes a rule while the pod waits.

local function phase_drift(call_after)
  local pod = new_pod()

  local r, e = run(pod, "true")
  check("drift pod runs before the change", r and r.exit_code == 0, describe(r, e))
  wait_for_driver("drift")

  if call_after then
    r, e = run(pod, "true")
    check("call after drift is refused",
          r == nil and e.kind == "sandbox_error"
          and tostring(e.reason):find("packet filter changed", 1, true) ~= nil,
          describe(r, e))
  end
  pod:close()
end

-- ---------------------------------------------------------------------
-- An owner that keeps its pod open until the driver SIGKILLs it.

local function phase_hold()
  local pod = new_pod()

  local r, e = run(pod, "true")
  check("held pod runs", r and r.exit_code == 0, describe(r, e))
  wait_for_driver("hold")
  pod:close()
end

-- ---------------------------------------------------------------------
-- Attenuation to no network: the running pod loses its egress.

-- The test profile with every network entry removed.
local NO_NETWORK = [[
return nucleus.profile {
  name = "pod-network-test-narrowed",
  capabilities = {
    read_files = "always", web_fetch = "always", run_bash = "always",
  },
  paths = { allow = nucleus.ALL },
  commands = { allow = nucleus.ALL },
  network = { allow = {}, domains = {}, trusted = {} },
  approve = function(request, ctx)
    if request.call.tool == "run" then return "approve" end
    return "ask"
  end,
}
]]

local function phase_attenuate()
  local pod = new_pod()

  local r, e = run(pod, PROBE .. "tcp 10.252.0.2 8080")
  check("direct connect before attenuation", r and r.exit_code == 0, describe(r, e))
  r, e = run(pod, PROBE .. "proxy-get http://10.252.0.3:8080/")
  check("proxy refusal before attenuation",
        r and r.exit_code == 0 and r.stdout:match("^HTTP/1%.%d 403"), describe(r, e))

  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write(NO_NETWORK)
  f:close()
  local ok, err = pod:attenuate(path)
  os.remove(path)
  check("attenuate to no network", ok, tostring(err and err.reason or err))

  -- Neither command names a URL, so only the kernel and the proxy decide.
  r, e = run(pod, PROBE .. "tcp 10.252.0.2 8080")
  check("direct connect after attenuation blocked",
        r and r.exit_code == 3 and r.stdout:match("^blocked"), describe(r, e))
  r, e = run(pod, PROBE .. "proxy-get http://allowed.test:8080/")
  check("proxy refuses after attenuation",
        r and r.exit_code == 0 and r.stdout:match("^HTTP/1%.%d 403"), describe(r, e))
  pod:close()
end

-- A plain egress pod: created, used once, closed.
local function phase_once()
  local pod = new_pod()

  local r, e = run(pod, "curl -sS -m 5 " .. ALLOWED)
  check("curl via proxy in a new pod", r and r.exit_code == 0 and r.stdout == HELLO,
        describe(r, e))
  pod:close()
end

local phases = {
  fetch = phase_fetch,
  run = phase_run,
  drift = function() phase_drift(true) end,
  drift_close = function() phase_drift(false) end,
  hold = phase_hold,
  once = phase_once,
  attenuate = phase_attenuate,
}
if not phases[phase] then
  io.stderr:write("pod_network.lua: unknown phase '" .. phase .. "'\n")
  return 2
end
phases[phase]()
emit("done")
return 0
