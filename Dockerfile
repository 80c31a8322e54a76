# The image docker-compose.yml runs; its commands are the Makefile's.
FROM python:3.11-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends make \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY . .
RUN make install
ENV DEBUG=false
EXPOSE 8000
CMD ["make", "serve"]
