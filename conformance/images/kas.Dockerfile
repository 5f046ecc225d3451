# kas, FROM scratch with a static binary. Build context: a directory holding only `kas`
# (ci/build-images.sh stages it), built with
#   RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --target x86_64-unknown-linux-gnu --bins
# crt-static links glibc statically, so the image needs no libc; TLS roots are compiled in
# (webpki-roots), so it needs no CA bundle either.
FROM scratch
COPY kas /kas
USER 65532:65532
ENTRYPOINT ["/kas"]
