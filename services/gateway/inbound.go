package gateway

import (
	"io"
	"net/http"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	webhookv1 "puente.dev/gen/go/puente/webhook/v1"
)

// maxInboundBody bounds an upstream's webhook.
const maxInboundBody = 1 << 20

// inboundEndpoint is POST /v1/inbound/{provider}: upstream providers' webhooks, handed to the
// webhook service as raw bytes, since their signatures are over the exact body.
func (g *gateway) inboundEndpoint(inbound webhookv1.InboundServiceClient) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, maxInboundBody+1))
		if err != nil || len(body) > maxInboundBody {
			writeError(w, r, status.New(codes.InvalidArgument, "request body: too large or unreadable"))
			return
		}
		headers := make(map[string]string, len(r.Header))
		for k, v := range r.Header {
			if k == "Authorization" || k == "Cookie" {
				continue // never a provider's signature here; kept out of the record
			}
			headers[strings.ToLower(k)] = strings.Join(v, ", ")
		}
		resp, err := inbound.ReceiveWebhook(r.Context(), &webhookv1.ReceiveWebhookRequest{
			Provider: r.PathValue("provider"), Headers: headers, Body: body,
		})
		if err != nil {
			writeError(w, r, g.public(r.Context(), err))
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"id": resp.GetId()})
	})
}
