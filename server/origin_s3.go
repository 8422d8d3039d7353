package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// S3Origin serves the objects below a prefix of an S3 bucket, or of any
// store that speaks S3 (SeaweedFS, MinIO, Ceph). Credentials and region
// come from the standard AWS environment variables and files. A version
// is the object's ETag; reads are pinned to it with If-Match.
type S3Origin struct {
	client         *s3.Client
	bucket, prefix string
	name           string // s3://bucket/prefix, for logs
}

// NewS3Origin returns an origin for s3://BUCKET/PREFIX. A non-empty
// endpoint (http://127.0.0.1:8333, say) is a store other than AWS,
// addressed path-style.
func NewS3Origin(ctx context.Context, origin, endpoint string) (*S3Origin, error) {
	u, err := url.Parse(origin)
	if err != nil || u.Scheme != "s3" || u.Host == "" {
		return nil, fmt.Errorf("origin %q: want s3://BUCKET/PREFIX", redactURL(origin))
	}
	prefix := strings.TrimPrefix(u.Path, "/")
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("origin s3://%s: AWS configuration: %w", u.Host, err)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1" // what stores other than AWS expect when none is set
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
			o.UsePathStyle = true
		}
		o.RetryMaxAttempts = 2 // a stream's client retries; the origin's retries only add delay
		// Checksums only where the API requires them: stores other than
		// AWS differ in the trailing checksums of newer SDKs, and a ranged
		// GET has none to check.
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	})
	return &S3Origin{client: client, bucket: u.Host, prefix: prefix, name: "s3://" + u.Host + "/" + prefix}, nil
}

func (o *S3Origin) String() string { return o.name }

// Close does nothing: the SDK's client holds no resources to release.
func (o *S3Origin) Close() error { return nil }

// s3Error maps an SDK error to the origin errors, with a detail that
// names the operation and status (never the credentials: the SDK's errors
// carry the request ID, not the signature).
func s3Error(op, key string, err error) error {
	var re *smithyhttp.ResponseError
	code := 0
	if errors.As(err, &re) {
		code = re.HTTPStatusCode()
	}
	kind := originStatus(code)
	if code == 0 || kind == nil {
		kind = ErrOriginUnavailable
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	msg := err.Error()
	if code != 0 {
		msg = strconv.Itoa(code) + " " + http.StatusText(code)
	}
	return fmt.Errorf("%w: %s %s: %s", kind, op, key, msg)
}

// Ready asks for the bucket.
func (o *S3Origin) Ready(ctx context.Context) error {
	if _, err := o.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &o.bucket}); err != nil {
		return s3Error("HeadBucket", o.bucket, err)
	}
	return nil
}

// Open asks for the object's current version.
func (o *S3Origin) Open(ctx context.Context, rel string) (Object, error) {
	stat := func(ctx context.Context) (ObjectInfo, error) { return o.stat(ctx, rel) }
	return openRemote(ctx, stat, o.get)
}

func (o *S3Origin) stat(ctx context.Context, rel string) (ObjectInfo, error) {
	key := o.prefix + rel
	out, err := o.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &o.bucket, Key: &key})
	if err != nil {
		return ObjectInfo{}, s3Error("HeadObject", key, err)
	}
	info := ObjectInfo{Path: rel, Size: aws.ToInt64(out.ContentLength), Version: aws.ToString(out.ETag)}
	if out.LastModified != nil {
		info.ModTime = *out.LastModified
	}
	if info.Version == "" {
		return ObjectInfo{}, fmt.Errorf("%w: HeadObject %s: no ETag", ErrOriginUnavailable, key)
	}
	return info, nil
}

func (o *S3Origin) get(ctx context.Context, info ObjectInfo, off int64) (io.ReadCloser, error) {
	key := o.prefix + info.Path
	out, err := o.client.GetObject(ctx, &s3.GetObjectInput{
		Bucket: &o.bucket, Key: &key, IfMatch: aws.String(info.Version),
		Range: aws.String("bytes=" + strconv.FormatInt(off, 10) + "-"),
	})
	if err != nil {
		return nil, s3Error("GetObject", key, err)
	}
	if e := aws.ToString(out.ETag); e != "" && e != info.Version {
		out.Body.Close()
		return nil, ErrOriginChanged
	}
	return out.Body, nil
}

// Walk lists the objects below the prefix whose names /sse/ can serve.
func (o *S3Origin) Walk(ctx context.Context, fn func(ObjectInfo) error) error {
	p := s3.NewListObjectsV2Paginator(o.client, &s3.ListObjectsV2Input{Bucket: &o.bucket, Prefix: &o.prefix})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return s3Error("ListObjectsV2", o.prefix, err)
		}
		for _, obj := range page.Contents {
			rel := strings.TrimPrefix(aws.ToString(obj.Key), o.prefix)
			if validRel(rel) != nil {
				continue // a "folder" marker, or a name /sse/ could not serve
			}
			info := ObjectInfo{Path: rel, Size: aws.ToInt64(obj.Size), Version: aws.ToString(obj.ETag)}
			if obj.LastModified != nil {
				info.ModTime = *obj.LastModified
			}
			if err := fn(info); err != nil {
				return err
			}
		}
	}
	return nil
}
