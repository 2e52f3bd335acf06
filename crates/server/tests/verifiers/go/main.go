// Command crlcheck judges a certificate as a relying party built on Go's standard library
// alone would: it builds the chain with crypto/x509, fetches each certificate's CRL from its
// CRL Distribution Point over HTTP, checks that CRL's signature against the issuer, its issuer
// name, its validity and its scope, and says whether the leaf is listed.
//
// Usage: crlcheck ROOT.pem INTERMEDIATE.pem LEAF.pem
//
// Prints "good" or "revoked REASON" (an RFC 5280 reason name; "unspecified" when the entry
// has no reason) about the leaf; exits 1 with a message on stderr when it cannot tell, or when
// the intermediate is not good on the root's CRL.
package main

import (
	"bytes"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

var (
	oidReasonCode               = asn1.ObjectIdentifier{2, 5, 29, 21}
	oidIssuingDistributionPoint = asn1.ObjectIdentifier{2, 5, 29, 28}
)

// RFC 5280 5.3.1 CRLReason names; 7 is unused.
var reasonNames = map[asn1.Enumerated]string{
	0:  "unspecified",
	1:  "keyCompromise",
	2:  "cACompromise",
	3:  "affiliationChanged",
	4:  "superseded",
	5:  "cessationOfOperation",
	6:  "certificateHold",
	8:  "removeFromCRL",
	9:  "privilegeWithdrawn",
	10: "aACompromise",
}

// The shapes of RFC 5280's IssuingDistributionPoint, as crypto/x509 reads a certificate's
// DistributionPoint (the CHOICE's explicit tag is the struct's implicit one).
type distributionPointName struct {
	FullName []asn1.RawValue `asn1:"optional,tag:0"`
	Relative asn1.RawValue   `asn1:"optional,tag:1"`
}

type issuingDistributionPoint struct {
	DistributionPoint distributionPointName `asn1:"optional,tag:0"`
	OnlyUserCerts     bool                  `asn1:"optional,tag:1"`
	OnlyCACerts       bool                  `asn1:"optional,tag:2"`
	OnlySomeReasons   asn1.BitString        `asn1:"optional,tag:3"`
	IndirectCRL       bool                  `asn1:"optional,tag:4"`
	OnlyAttributeCert bool                  `asn1:"optional,tag:5"`
}

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: crlcheck ROOT.pem INTERMEDIATE.pem LEAF.pem")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Args[2], os.Args[3]); err != nil {
		fmt.Fprintln(os.Stderr, "crlcheck:", err)
		os.Exit(1)
	}
}

func run(rootPath, intermediatePath, leafPath string) error {
	root, err := readCertificate(rootPath)
	if err != nil {
		return err
	}
	intermediate, err := readCertificate(intermediatePath)
	if err != nil {
		return err
	}
	leaf, err := readCertificate(leafPath)
	if err != nil {
		return err
	}
	roots := x509.NewCertPool()
	roots.AddCert(root)
	intermediates := x509.NewCertPool()
	intermediates.AddCert(intermediate)
	_, err = leaf.Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: intermediates,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		return fmt.Errorf("chain: %w", err)
	}
	// The intermediate on the root's CRL first, when it names one: a leaf under a revoked
	// intermediate is not good whatever its own CRL says.
	if len(intermediate.CRLDistributionPoints) > 0 {
		status, err := status(intermediate, root)
		if err != nil {
			return fmt.Errorf("intermediate: %w", err)
		}
		if status != "good" {
			return fmt.Errorf("intermediate is %s", status)
		}
	}
	status, err := status(leaf, intermediate)
	if err != nil {
		return fmt.Errorf("leaf: %w", err)
	}
	fmt.Println(status)
	return nil
}

// status is "good" or "revoked REASON" for cert, from the CRL at its first distribution point,
// which issuer must have signed.
func status(cert, issuer *x509.Certificate) (string, error) {
	if len(cert.CRLDistributionPoints) == 0 {
		return "", errors.New("no CRL distribution point")
	}
	url := cert.CRLDistributionPoints[0]
	der, err := fetch(url)
	if err != nil {
		return "", err
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		return "", fmt.Errorf("CRL from %s: %w", url, err)
	}
	if err := crl.CheckSignatureFrom(issuer); err != nil {
		return "", fmt.Errorf("CRL from %s: signature: %w", url, err)
	}
	if !bytes.Equal(crl.RawIssuer, cert.RawIssuer) {
		return "", fmt.Errorf("CRL from %s names another issuer", url)
	}
	now := time.Now()
	if now.Before(crl.ThisUpdate) || (!crl.NextUpdate.IsZero() && !now.Before(crl.NextUpdate)) {
		return "", fmt.Errorf("CRL from %s is not current (%s to %s)", url, crl.ThisUpdate, crl.NextUpdate)
	}
	if err := checkScope(crl.Extensions, url); err != nil {
		return "", fmt.Errorf("CRL from %s: %w", url, err)
	}
	for _, entry := range crl.RevokedCertificates {
		if entry.SerialNumber.Cmp(cert.SerialNumber) != 0 {
			continue
		}
		reason := asn1.Enumerated(0)
		for _, ext := range entry.Extensions {
			switch {
			case ext.Id.Equal(oidReasonCode):
				rest, err := asn1.Unmarshal(ext.Value, &reason)
				if err != nil || len(rest) != 0 {
					return "", fmt.Errorf("CRL from %s: malformed reason code", url)
				}
			case ext.Critical:
				return "", fmt.Errorf("CRL from %s: unknown critical entry extension %s", url, ext.Id)
			}
		}
		name, known := reasonNames[reason]
		if !known {
			return "", fmt.Errorf("CRL from %s: unknown reason code %d", url, reason)
		}
		return "revoked " + name, nil
	}
	return "good", nil
}

// checkScope refuses a CRL this program cannot read whole (an unknown critical extension: a
// delta CRL indicator among them, since a delta is no complete CRL) and one whose Issuing
// Distribution Point does not cover a certificate pointing at url (RFC 5280 6.3.3 (b)).
func checkScope(extensions []pkix.Extension, url string) error {
	for _, ext := range extensions {
		if !ext.Id.Equal(oidIssuingDistributionPoint) {
			if ext.Critical {
				return fmt.Errorf("unknown critical extension %s", ext.Id)
			}
			continue
		}
		var idp issuingDistributionPoint
		rest, err := asn1.Unmarshal(ext.Value, &idp)
		if err != nil || len(rest) != 0 {
			return errors.New("malformed issuing distribution point")
		}
		if idp.OnlyCACerts || idp.OnlyAttributeCert || idp.IndirectCRL || idp.OnlySomeReasons.BitLength > 0 {
			return errors.New("the issuing distribution point scopes the CRL to other certificates")
		}
		covered := false
		for _, name := range idp.DistributionPoint.FullName {
			// uniformResourceIdentifier [6] IA5String
			if name.Class == asn1.ClassContextSpecific && name.Tag == 6 && string(name.Bytes) == url {
				covered = true
			}
		}
		if !covered {
			return fmt.Errorf("its issuing distribution point does not name %s", url)
		}
	}
	return nil
}

func fetch(url string) ([]byte, error) {
	client := http.Client{Timeout: 10 * time.Second}
	response, err := client.Get(url)
	if err != nil {
		return nil, err
	}
	defer response.Body.Close()
	if response.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, response.Status)
	}
	return io.ReadAll(io.LimitReader(response.Body, 64<<20))
}

func readCertificate(path string) (*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%s: no PEM certificate", path)
	}
	return x509.ParseCertificate(block.Bytes)
}
