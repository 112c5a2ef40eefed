package main

import (
	"crypto/ed25519"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/pbftnode/pbftnode/config"
	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/keyfile"
	"github.com/pbftnode/pbftnode/p2p/identity"
)

func runKeygen(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("keygen", flag.ContinueOnError)
	out := fs.String("out", "", "file to write the new private key to, mode 0600; never overwritten (required)")
	encrypt := fs.Bool("encrypt", false, "encrypt the key file with a passphrase (argon2id + chacha20poly1305), from $"+config.PassphraseEnv+" or --passphrase-file")
	passFile := fs.String("passphrase-file", "", "with --encrypt: read the passphrase from this file (mode 0600; one trailing newline is dropped)")
	if err := parse(fs, args, stderr); err != nil {
		return err
	}
	switch {
	case *out == "":
		return fmt.Errorf("%w: --out is required", errUsage)
	case fs.NArg() != 0:
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	case *passFile != "" && !*encrypt:
		return fmt.Errorf("%w: --passphrase-file needs --encrypt", errUsage)
	}
	key, err := crypto.GenerateKey(nil)
	if err != nil {
		return err
	}
	if *encrypt {
		pass, err := keygenPassphrase(*passFile)
		if err != nil {
			return err
		}
		err = keyfile.WriteEncrypted(*out, key, pass)
		clear(pass)
		if err != nil {
			return err
		}
	} else if err := keyfile.Write(*out, key); err != nil {
		return err
	}
	pub := key.Public().(ed25519.PublicKey)
	id, err := identity.PeerIDFromPublicKey(pub)
	if err != nil {
		return err
	}
	kind := "plain"
	if *encrypt {
		kind = "encrypted"
	}
	fmt.Fprintf(stdout, "wrote %s key file %s\npublic_key: %s\npeer_id: %s\n", kind, *out, keyfile.EncodePublicKey(pub), id)
	return nil
}

// keygenPassphrase returns the passphrase from --passphrase-file, else from
// the environment. It is never printed.
func keygenPassphrase(file string) ([]byte, error) {
	if file != "" {
		return keyfile.ReadPassphraseFile(file)
	}
	if p := os.Getenv(config.PassphraseEnv); p != "" {
		return []byte(p), nil
	}
	return nil, fmt.Errorf("%w: --encrypt needs a passphrase: set %s or pass --passphrase-file", errUsage, config.PassphraseEnv)
}

// readKey reads a key file `pbftnode keygen` wrote: a plain one, or an
// encrypted one whose passphrase is in $PBFTNODE_PASSPHRASE.
func readKey(path string) (ed25519.PrivateKey, error) {
	key, err := keyfile.ReadWithPassphrase(path, func() ([]byte, error) {
		if p := os.Getenv(config.PassphraseEnv); p != "" {
			return []byte(p), nil
		}
		return nil, fmt.Errorf("%w: set %s", keyfile.ErrPassphraseRequired, config.PassphraseEnv)
	})
	if err != nil {
		return nil, fmt.Errorf("read key: %w", err)
	}
	return key, nil
}

// readPublicKey returns the hex public key (as keygen prints it) of the
// key file at path.
func readPublicKey(path string) (string, error) {
	key, err := readKey(path)
	if err != nil {
		return "", err
	}
	return keyfile.EncodePublicKey(key.Public().(ed25519.PublicKey)), nil
}
