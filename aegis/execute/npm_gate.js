'use strict'
// aegisd's gate for a signed npm run started early (aegis/execute/npm_gate.py).
//
// Loaded with --require (NODE_OPTIONS) before npm. npm boots, loads its modules and its
// configuration as always; its command runs only once aegisd writes 'g' on the gate's
// file descriptor. EOF or anything else (aegisd refused the plan, or died) exits 125
// before the command. Fail closed: an npm whose layout this gate does not know waits
// before any of npm runs, and npm's command or installer loading before the gate is in
// place exits 125.
const fs = require('node:fs')
const path = require('node:path')
const Module = require('node:module')

const STOPPED = 125

function stop () {
  // No exit handlers: npm has not started anything to finish.
  if (typeof process.reallyExit === 'function') {
    process.reallyExit(STOPPED)
  }
  process.exit(STOPPED)
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

function knownLayout () {
  // npm 10 and later: lib/cli/entry.js loads lib/npm.js and runs the command by npm.exec.
  try {
    const entry = fs.readFileSync(path.join(root, 'lib', 'cli', 'entry.js'), 'utf8')
    return fs.statSync(NPM_JS).isFile() && entry.includes("require('../npm.js')") &&
      entry.includes('npm.exec(command, args)')
  } catch {
    return false
  }
}

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
const isBuiltin = typeof Module.isBuiltin === 'function' ? Module.isBuiltin : () => false
Module._load = function (request, parent, isMain) {
  if (passed || typeof request !== 'string' || isBuiltin(request)) {
    return load.apply(this, arguments)
  }
  let file = ''
  try {
    file = Module._resolveFilename(request, parent, isMain)
  } catch {
    return load.apply(this, arguments) // throws as it would have: nothing of it runs
  }
  // Checked before the module runs: a command or the installer never loads ungated.
  if (!wrapped && file !== NPM_JS && (file.startsWith(COMMANDS) || file.includes(INSTALLER))) {
    stop()
  }
  const exports = load.apply(this, arguments)
  if (!wrapped && file === NPM_JS) {
    wrap(exports)
  }
  return exports
}

if (!knownLayout()) {
  waitForGo() // an npm this gate does not know: held here, before any of it runs
}
