package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
)

// httpStatus maps an error to its HTTP status, once, at the handler
// boundary. Errors not listed are internal: 500, and their text stays in the
// log, never in a response.
func httpStatus(err error) (int, string) {
	var he *echo.HTTPError
	switch {
	case errors.Is(err, errNotFound):
		return http.StatusNotFound, "not found"
	case errors.Is(err, errBadRange), errors.Is(err, errBadLastEventID):
		return http.StatusBadRequest, err.Error()
	case errors.Is(err, errUnsatisfiable), errors.Is(err, errMultiRange):
		return http.StatusRequestedRangeNotSatisfiable, err.Error()
	case errors.Is(err, errChangedVersion):
		return http.StatusPreconditionFailed, err.Error()
	case errors.Is(err, errTooManyStreams), errors.Is(err, errChanging):
		return http.StatusServiceUnavailable, err.Error()
	case errors.Is(err, errUnauthenticated):
		return http.StatusUnauthorized, err.Error()
	case errors.Is(err, errForbidden):
		return http.StatusForbidden, err.Error()
	case errors.Is(err, ErrOriginDenied):
		return http.StatusForbidden, ErrOriginDenied.Error()
	case errors.Is(err, ErrOriginUnavailable):
		return http.StatusServiceUnavailable, ErrOriginUnavailable.Error() // the detail is for the log
	case errors.Is(err, ErrOriginChanged):
		return http.StatusServiceUnavailable, errChanging.Error()
	case errors.As(err, &he):
		return he.Code, http.StatusText(he.Code)
	}
	return http.StatusInternalServerError, "internal error"
}

// statusClientClosed is what the access log records for a request whose
// client left before the answer.
const statusClientClosed = 499

// handleError writes err as a JSON body {"error": "...", "status": N}.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	code, msg := httpStatus(err)
	if c.Request().Context().Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		// The client left: nobody reads the answer, and it is no fault of
		// the server's. 499 is nginx's "client closed request", for the log.
		c.Response().Status = statusClientClosed
		return
	}
	switch {
	case code == http.StatusInternalServerError:
		s.log.Error("internal error", "path", c.Request().URL.Path, "err", err)
	case errors.Is(err, ErrOriginUnavailable), errors.Is(err, ErrOriginDenied):
		s.log.Warn("origin", "path", c.Request().URL.Path, "err", err)
	}
	if code == http.StatusServiceUnavailable {
		c.Response().Header().Set("Retry-After", "2")
	}
	var pe *pinError
	if errors.As(err, &pe) && pe.etag != "" {
		c.Response().Header().Set("ETag", `"`+pe.etag+`"`)
	}
	if c.Request().Method == http.MethodHead {
		c.NoContent(code)
		return
	}
	c.JSON(code, map[string]any{"error": msg, "status": code})
}

func (s *Server) recoverPanics(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) (err error) {
		defer func() {
			if r := recover(); r != nil {
				if r == http.ErrAbortHandler {
					panic(r)
				}
				err = fmt.Errorf("panic: %v", r)
			}
		}()
		return next(c)
	}
}

func (s *Server) accessLog(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		if err != nil {
			c.Error(err)
		}
		r := c.Request()
		s.metrics.response(c.Response().Status)
		s.log.LogAttrs(r.Context(), slog.LevelInfo, "request",
			slog.String("method", r.Method), slog.String("path", r.URL.Path),
			slog.Int("status", c.Response().Status), slog.Int64("bytes", c.Response().Size),
			slog.Duration("duration", time.Since(start)), slog.String("remote", c.RealIP()))
		return nil
	}
}
