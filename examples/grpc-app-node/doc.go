// Package nodeapp holds the Go test of the Node.js application server in
// this directory (server.js): it starts `node server.js` and checks it with
// package appgrpctest against the built-in key-value store. The test skips
// unless node is on PATH and `npm ci` has installed node_modules here.
package nodeapp
