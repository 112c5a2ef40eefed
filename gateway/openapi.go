package gateway

import (
	"regexp"
	"strings"
)

// obj is a JSON object of the OpenAPI document.
type obj = map[string]any

// pathParam matches a {name} segment of a route pattern.
var pathParam = regexp.MustCompile(`\{([a-z_]+)\}`)

// openAPI builds the OpenAPI 3.0 document from the route table.
func (g *Gateway) openAPI() obj {
	paths := obj{}
	for _, rt := range g.routes {
		p, ok := paths[rt.pattern].(obj)
		if !ok {
			p = obj{}
			paths[rt.pattern] = p
		}
		p[strings.ToLower(rt.method)] = g.operation(rt)
	}
	return obj{
		"openapi": "3.0.3",
		"info": obj{
			"title":       "pbftnode gateway",
			"version":     "1",
			"description": "A pbftnode client over HTTP: every operation is signed with the gateway's key. Writes, and reads with ?receipt=true, are ordered and answered with the cluster's receipt (verify it offline: pbftnode verify-receipt). Errors carry the outcome and exit code of `pbftnode client`.",
		},
		"paths":      paths,
		"components": obj{"schemas": schemas()},
	}
}

// operation is the OpenAPI operation object of rt.
func (g *Gateway) operation(rt route) obj {
	var params []any
	for _, m := range pathParam.FindAllStringSubmatch(rt.pattern, -1) {
		params = append(params, obj{"name": m[1], "in": "path", "required": true, "schema": obj{"type": "string"}})
	}
	for _, q := range rt.query {
		params = append(params, obj{"name": q[0], "in": "query", "required": false, "description": q[1], "schema": obj{"type": "string"}})
	}
	op := obj{
		"summary":     rt.summary,
		"operationId": operationID(rt),
		"responses":   responses(rt),
	}
	if len(params) > 0 {
		op["parameters"] = params
	}
	switch rt.body {
	case "":
	case "value":
		op["requestBody"] = obj{"required": true, "content": obj{"application/octet-stream": obj{"schema": obj{"type": "string", "format": "binary", "maxLength": MaxValueSize}}}}
	default:
		op["requestBody"] = obj{"required": true, "content": obj{"application/json": obj{"schema": ref(rt.body)}}}
	}
	return op
}

// operationID names rt from its method and the fixed words of its path.
func operationID(rt route) string {
	id := strings.ToLower(rt.method)
	for _, part := range strings.Split(rt.pattern, "/") {
		part = strings.Trim(part, "{}")
		part = strings.TrimSuffix(part, ".json")
		if part != "" && part != "v1" {
			id += strings.ToUpper(part[:1]) + part[1:]
		}
	}
	return id
}

func ref(schema string) obj { return obj{"$ref": "#/components/schemas/" + schema} }

// responses lists what rt may answer.
func responses(rt route) obj {
	ok := obj{"description": "executed", "content": obj{"application/json": obj{"schema": ref("Answer")}}}
	if rt.handle == nil {
		ok = obj{"description": "this document", "content": obj{"application/json": obj{"schema": obj{"type": "object"}}}}
	}
	rs := obj{"200": ok, "405": errResponse("method not allowed (exit_code 2)")}
	if !rt.bounded {
		return rs
	}
	rs["400"] = errResponse("malformed request: nothing was sent (exit_code 2)")
	rs["409"] = errResponse("refused by f+1 replicas or by the application: it did not and will not take effect (exit_code 4)")
	rs["502"] = errResponse("not sent (exit_code 1), or an agreed result the gateway cannot read (outcome unknown, exit_code 3)")
	rs["503"] = errResponse("busy: too many operations in flight; retry after Retry-After seconds (exit_code 1)")
	rs["504"] = errResponse("outcome unknown: no f+1 matching replies in time; the operation may or may not take effect (exit_code 3)")
	if rt.body != "" {
		rs["413"] = errResponse("request body too large (exit_code 2)")
	}
	return rs
}

func errResponse(description string) obj {
	return obj{"description": description, "content": obj{"application/json": obj{"schema": ref("Error")}}}
}

// schemas are the document's component schemas.
func schemas() obj {
	str := obj{"type": "string"}
	b64 := obj{"type": "string", "format": "byte"}
	boolean := obj{"type": "boolean"}
	u64 := obj{"type": "integer", "format": "int64", "minimum": 0}
	return obj{
		"Answer": obj{"type": "object", "required": []string{"operation", "outcome", "ok"}, "properties": obj{
			"operation": str, "outcome": obj{"type": "string", "enum": []string{outcomeExecuted}}, "ok": boolean,
			"key": str, "found": boolean, "swapped": boolean,
			"value":        obj{"type": "string", "description": "the value as text, when it is valid UTF-8"},
			"value_base64": b64,
			"application":  str, "account": str, "to": str, "amount": u64, "balance": u64, "total_minted": u64,
			"history": obj{"type": "array", "items": obj{"type": "object", "properties": obj{
				"sequence_in_account": u64, "kind": str, "from": str, "to": str, "amount": u64, "balance_after": u64}}},
			"receipt": obj{"type": "object", "description": "the cluster's receipt, as `pbftnode client --receipt` writes it"},
		}},
		"Error": obj{"type": "object", "required": []string{"error", "outcome", "exit_code"}, "properties": obj{
			"error":     str,
			"outcome":   obj{"type": "string", "enum": []string{outcomeUnknown, outcomeRefused, outcomeNotSent}},
			"exit_code": obj{"type": "integer", "description": "what `pbftnode client` would exit with: 1 not sent, 2 usage, 3 unknown, 4 refused"},
		}},
		"CAS": obj{"type": "object", "description": "each value as text or as base64, not both; old absent or null: swap only if the key is absent", "properties": obj{
			"old": obj{"type": "string", "nullable": true}, "old_base64": b64, "new": str, "new_base64": b64}},
		"Mint":     obj{"type": "object", "required": []string{"account", "amount"}, "properties": obj{"account": str, "amount": u64}},
		"Transfer": obj{"type": "object", "required": []string{"to", "amount"}, "properties": obj{"to": str, "amount": u64}},
	}
}
