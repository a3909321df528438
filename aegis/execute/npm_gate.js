'use strict'
// aegisd's gate for a signed npm run started early (aegis/execute/npm_gate.py).
//
// Loaded with --require (NODE_OPTIONS) before npm. npm boots, loads its modules and its
// configuration as always; its command runs only once aegisd writes 'g' on the gate's
// file descriptor. EOF or anything else (aegisd refused the plan, or died) exits 125
// before the command. Fail closed: npm's command or the installer loading before the gate
// was in place also exits 125 (a layout this gate does not know is never run ungated).
const fs = require('node:fs')
const path = require('node:path')
const Module = require('node:module')

const STOPPED = 125

function stop () {
  process.reallyExit(STOPPED) // no exit handlers: npm has not started anything to finish
}

const fd = Number(process.env.AEGIS_NPM_GATE_FD)
// npm's own children never inherit the gate.
delete process.env.AEGIS_NPM_GATE_FD
delete process.env.NODE_OPTIONS
if (!Number.isInteger(fd) || fd < 3) {
  stop()
}

let root = ''
try {
  root = path.dirname(path.dirname(fs.realpathSync(process.argv[1])))
} catch {
  stop()
}
const NPM_JS = path.join(root, 'lib', 'npm.js')
const COMMANDS = path.join(root, 'lib', 'commands') + path.sep
const INSTALLER = `${path.sep}@npmcli${path.sep}arborist${path.sep}`

let wrapped = false
let passed = false

function waitForGo () {
  const buf = Buffer.alloc(1)
  const pause = new Int32Array(new SharedArrayBuffer(4))
  let n = 0
  for (;;) {
    try {
      n = fs.readSync(fd, buf, 0, 1, null)
      break
    } catch (e) {
      if (e.code !== 'EAGAIN') {
        stop()
      }
      Atomics.wait(pause, 0, 0, 5)
    }
  }
  if (n !== 1 || buf[0] !== 0x67) { // 'g'
    stop()
  }
  fs.closeSync(fd)
  passed = true
}

function warm (name) {
  // What the command loads lazily, loaded while aegisd checks (the same modules, earlier).
  try {
    if (/^[a-z][a-z-]*$/.test(name)) {
      require(path.join(COMMANDS, `${name}.js`))
    }
    require(require.resolve('@npmcli/arborist', { paths: [root] }))
    require(require.resolve('pacote', { paths: [root] }))
  } catch {
    // not this npm's layout: the command loads them itself after the gate
  }
}

function wrap (Npm) {
  const exec = Npm && Npm.prototype && Npm.prototype.exec
  if (typeof exec !== 'function') {
    stop()
  }
  Npm.prototype.exec = function (cmd, args) {
    if (!passed) {
      warm(String(cmd))
      waitForGo()
    }
    return exec.call(this, cmd, args)
  }
  wrapped = true
}

const load = Module._load
Module._load = function (request, parent, isMain) {
  const exports = load.apply(this, arguments)
  if (!passed && typeof request === 'string' &&
      (request.endsWith('npm.js') || request.includes('commands') || request.includes('arborist'))) {
    let file = ''
    try {
      file = Module._resolveFilename(request, parent, isMain)
    } catch {
      stop()
    }
    if (!wrapped && file === NPM_JS) {
      wrap(exports)
    } else if (!wrapped && (file.startsWith(COMMANDS) || file.includes(INSTALLER))) {
      stop()
    }
  }
  return exports
}
